import hashlib

import numpy as np

from kbert.data.pretraining import special_token_ids
from kbert.data.pretraining.vocab import Vocab
from kbert.tokenization import BertTokenizer

TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[", "]", "the", "cat", "##s", "a"]


def test_reserved_tokens_are_the_bracketed_ones():
    tok = BertTokenizer(TOKENS)
    ids = special_token_ids(tok)
    assert ids.dtype == np.int32
    # "[" and "]" alone are punctuation a text can contain, not reserved tokens.
    assert ids.tolist() == [0, 1, 2, 3, 4, 5]


def test_vocab_tables(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("".join(t + "\n" for t in TOKENS), encoding="utf-8")
    vocab = Vocab(BertTokenizer(str(path)))
    assert (vocab.size, vocab.cls_id, vocab.sep_id, vocab.pad_id, vocab.mask_id) == (12, 2, 3, 0, 4)
    assert vocab.special_ids.tolist() == [0, 1, 2, 3, 4, 5]
    assert vocab.word_start.tolist() == [t != "##s" for t in TOKENS]
    # The hash is the vocab.txt file's: data can be checked against a model dir.
    assert vocab.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
