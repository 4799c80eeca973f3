"""Data pipelines: pre-training examples from raw text (`kbert.data.pretraining`,
a package: documents, instances, masking, TFRecords, dynamic dataset),
classification files (`classification`), CoNLL NER (`ner`) and SQuAD (`squad`).

The pre-training names load `kbert.data.pretraining` on first use (and
TensorFlow with the masking and dataset names; the document reader and the
sentence splitter need none), so the fine-tuning readers and scorers import on
any Keras backend."""

import importlib

from kbert.data.classification import (
    TextData,
    label_ids,
    make_labels,
    read_text_data,
    text_dataset,
)
from kbert.data.ner import (
    Sentence,
    convert_tags,
    decode_ner,
    detect_scheme,
    encode_ner,
    label_list,
    read_conll,
)
from kbert.data.words import split_words
from kbert.data.squad import SquadExample, SquadFeatures, encode_squad, postprocess, read_squad

# Loaded from kbert.data.pretraining on first use.
_PRETRAINING = (
    "DATA_INFO",
    "MAX_DOCUMENT_SENTENCES",
    "MaskedTokens",
    "MaskingSpec",
    "PretrainingConfig",
    "create_instances",
    "data_errors",
    "dynamic_dataset",
    "expand_paths",
    "held_out_split",
    "mask_tokens",
    "mask_tokens_tf",
    "read_data_info",
    "read_documents",
    "special_token_ids",
    "split_sentences",
    "tfrecord_dataset",
    "truncate_pair",
    "write_tfrecords",
)

__all__ = [
    "Sentence",
    "SquadExample",
    "SquadFeatures",
    "TextData",
    "convert_tags",
    "decode_ner",
    "detect_scheme",
    "encode_ner",
    "encode_squad",
    "label_ids",
    "label_list",
    "make_labels",
    "postprocess",
    "read_conll",
    "read_squad",
    "read_text_data",
    "split_words",
    "text_dataset",
    *_PRETRAINING,
]


def __getattr__(name):
    if name in _PRETRAINING:
        return getattr(importlib.import_module("kbert.data.pretraining"), name)
    raise AttributeError(f"module 'kbert.data' has no attribute {name!r}")
