"""Google's BERT release (TF1 checkpoints read with `tf.train.load_checkpoint`)."""

import os

from kbert.checkpoints.variables import (
    _GOOGLE_IGNORED_SUFFIXES,
    _assign,
    _check_vocab,
    weight_map,
)
from kbert.config import BertConfig
from kbert.errors import DataError
from kbert.tasks.registry import HF_ARCHITECTURES


def _google_prefix(directory):
    names = os.listdir(directory)
    if "bert_model.ckpt.index" in names:
        return os.path.join(directory, "bert_model.ckpt")
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(directory)
    if latest:
        return latest
    indexes = sorted(n for n in names if n.endswith(".index"))
    if indexes:
        return os.path.join(directory, indexes[0][: -len(".index")])
    raise DataError(f"{directory}: no TF checkpoint (bert_model.ckpt.index) found")


def load_google(directory, lowercase=None):
    """Build a kbert pre-training model from Google's original BERT release.

    Reads `bert_config.json`, `vocab.txt` and `bert_model.ckpt.*` with
    `tf.train.load_checkpoint` (no TF1 graph). The encoder and both pre-training
    heads are imported; a checkpoint without `cls/seq_relationship/*` gives an
    MLM-only model, one without `cls/` at all a bare encoder.

    Args:
        directory: the unzipped release directory.
        lowercase: tokenizer casing; default guesses from the vocab (an uncased
            vocab has no upper-case tokens).
    """
    import tensorflow as tf

    from kbert.tokenization.vocab import load_vocab

    if not os.path.isdir(directory):
        raise DataError(f"{directory}: directory not found")
    config_path = os.path.join(directory, "bert_config.json")
    config = BertConfig.from_json(config_path)
    vocab_path = os.path.join(directory, "vocab.txt")
    vocab = load_vocab(vocab_path)
    _check_vocab(vocab, config, vocab_path)
    prefix = _google_prefix(directory)
    try:
        reader = tf.train.load_checkpoint(prefix)
        names = list(reader.get_variable_to_shape_map())
        arrays = {n: reader.get_tensor(n) for n in names if not n.endswith(_GOOGLE_IGNORED_SUFFIXES)}
    except (tf.errors.OpError, ValueError) as e:
        raise DataError(f"{prefix}: cannot read TF checkpoint ({e})") from None
    # The heads present say which of HF's equivalent architectures it holds.
    # (Google's files keep the pooler whatever the heads.)
    if "cls/predictions/output_bias" not in arrays:
        arch = HF_ARCHITECTURES["BertModel"]
    elif "cls/seq_relationship/output_weights" in arrays:
        arch = HF_ARCHITECTURES["BertForPreTraining"]
    else:
        arch = HF_ARCHITECTURES["BertForMaskedLM"]
    model = arch.build(config)
    _assign(
        weight_map(model), arrays, prefix + ".*",
        name_of=lambda x: x.google, transpose_of=lambda x: x.google_transpose,
        ignored=lambda n: False,
    )
    if lowercase is None:
        lowercase = not any(token != token.lower() for token in vocab if not token.startswith("["))
    return model, {"vocab": vocab, "lowercase": lowercase, "labels": [], "task": arch.task}
