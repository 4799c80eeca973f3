"""BERT pre-training data: raw text to masked-LM + next-sentence examples.

The recipe is Google's `create_pretraining_data.py` (google-research/bert):
documents are cut into `[CLS] A [SEP] B [SEP]` pairs, B is the true continuation
or (half the time) a segment of another document, the pair is truncated longest
first, and 15% of the tokens are selected for prediction (80% `[MASK]`, 10% a
random token, 10% unchanged), optionally whole words at a time. We write our
own to stream corpora of any size in flat memory and to mask reproducibly in
parallel `tf.data` maps; each module says where it differs from Google and why.

The stages, in data-flow order:

* `config`: `PretrainingConfig`, the settings every stage reads.
* `documents`: files -> documents (lists of sentences), the sentence splitter
  and the held-out split. Pure Python: importing it starts no TensorFlow.
* `vocab`: the tokenizer's id tables (`special_token_ids`).
* `instances`: documents -> unmasked NSP instances (`create_instances`).
* `masking`: `MaskingSpec`, one spec for the NumPy (`mask_tokens`) and the
  TensorFlow (`mask_tokens_tf`) masker.
* `features`: the example format both datasets give Keras.
* `tfrecords`: masks fixed once, written to shards (`write_tfrecords`) and read
  back (`tfrecord_dataset`, `read_data_info`); use `dupe_factor` > 1 for
  several maskings of the corpus.
* `dynamic`: instances and masks made anew every epoch (`dynamic_dataset`,
  `data_errors`).

Both datasets yield Keras-ready `(x, y, sample_weight)` for `BertPretrainer`.
The names from `masking`, `features`, `tfrecords` and `dynamic` load on first
use, so that reading documents or splitting sentences never imports
TensorFlow.
"""

import importlib

from kbert.data.pretraining.config import PretrainingConfig
from kbert.data.pretraining.documents import (
    INTERLEAVE_FILES,
    MAX_DOCUMENT_SENTENCES,
    expand_paths,
    held_out_split,
    read_documents,
    split_sentences,
)
from kbert.data.pretraining.instances import create_instances, truncate_pair
from kbert.data.pretraining.vocab import special_token_ids

# Public names of the TensorFlow modules, loaded on first use.
_LAZY = {
    "MaskedTokens": "masking",
    "MaskingSpec": "masking",
    "mask_tokens": "masking",
    "mask_tokens_tf": "masking",
    "DATA_INFO": "tfrecords",
    "read_data_info": "tfrecords",
    "tfrecord_dataset": "tfrecords",
    "write_tfrecords": "tfrecords",
    "data_errors": "dynamic",
    "dynamic_dataset": "dynamic",
}

__all__ = [
    "INTERLEAVE_FILES",
    "MAX_DOCUMENT_SENTENCES",
    "PretrainingConfig",
    "create_instances",
    "expand_paths",
    "held_out_split",
    "read_documents",
    "special_token_ids",
    "split_sentences",
    "truncate_pair",
    *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
