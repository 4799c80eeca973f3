"""WordPiece vocabularies and an in-graph BERT tokenizer.

`BertTokenizer` turns raw strings into BERT inputs (`token_ids`, `segment_ids`,
`padding_mask`) with TensorFlow ops only, so the same object works eagerly, inside
`tf.data.Dataset.map` and inside a `tf.function` exported to a SavedModel that needs
nothing but `tensorflow` and `tensorflow_text` to serve. That is why we wrap
tf-text's `FastBertTokenizer` ourselves instead of using a Python tokenizer (Hugging
Face `tokenizers` cannot run in the graph or be exported) or keras-hub's
`BertTokenizer` (whose text handling differs from the reference in the ways below):

* Text cleaning and case folding match Hugging Face's `BertTokenizer` (the
  reference most checkpoints were trained with) rather than tf-text's own
  `lower_case_nfd_strip_accents` path. tf-text lowercases with NFKC case folding,
  which rewrites `²`, `½`, `…`, `ß`, `ﬁ`, full-width forms and more, so it
  disagrees with HF on such text. We drop control/format characters, lowercase,
  NFD-decompose and strip accents with plain string ops and give the wordpiece op
  only the already-normalized text.
* Words of more than 100 characters become `[UNK]` as in HF (the op itself limits
  words by bytes, which differs for non-ASCII words).
* `pack` truncates sentence pairs longest-first, exactly like BERT's
  `_truncate_seq_pair`, then adds `[CLS]`/`[SEP]` and pads.

`learn_vocab` learns a vocabulary from text files with Hugging Face `tokenizers`'
WordPiece trainer (Rust), fed with text normalized and split into words the same
way, so the learned vocabulary fits the tokenizer that will use it.


Modules: `vocab` (vocab.txt I/O, no TensorFlow), `normalize` (text cleaning in the
graph), `tokenizer` (`BertTokenizer`), `learn` (vocabulary learning). Names are
imported lazily, so `kbert.tokenization.vocab` loads without TensorFlow.
"""

from kbert.lazy import lazy_getattr

_EXPORTS = {
    "SPECIAL_TOKENS": "kbert.tokenization.vocab",
    "MAX_CHARS_PER_WORD": "kbert.tokenization.vocab",
    "load_vocab": "kbert.tokenization.vocab",
    "clean_text": "kbert.tokenization.normalize",
    "normalize_text": "kbert.tokenization.normalize",
    "BertTokenizer": "kbert.tokenization.tokenizer",
    "learn_vocab": "kbert.tokenization.learn",
}

__all__ = list(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS, light={"SPECIAL_TOKENS", "MAX_CHARS_PER_WORD", "load_vocab"})
