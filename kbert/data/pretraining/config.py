"""`PretrainingConfig`: how pre-training instances are built and masked.

One frozen dataclass that every stage reads (instances, masking, TFRecords,
the dynamic dataset) and that `write_tfrecords` stores in `pretrain_data.json`,
so data written once is read back with the settings it was made with. It
imports no TensorFlow: the CLI builds one before deciding whether to start TF.
"""

import dataclasses

import numpy as np

from kbert.errors import KbertError


@dataclasses.dataclass(frozen=True)
class PretrainingConfig:
    """How pre-training instances are built and masked.

    Args:
        seq_len: length of every example, `[CLS]`, `[SEP]`s and padding included.
        short_seq_prob: probability that a document's instances aim at a random
            length in `[2, seq_len - 3]` instead of `seq_len - 3` tokens, so the
            model also sees short inputs (drawn once per document, as Google does).
        masked_lm_prob: fraction of the selectable tokens to predict.
        max_predictions_per_seq: at most this many predictions per example
            (the length of `mask_positions`).
        whole_word_mask: select all pieces of a word together.
        random_next_prob: probability that segment B comes from another document
            (NSP label 1); always when A's chunk has a single sentence.
        dupe_factor: `write_tfrecords` writes the corpus this many times, each
            with new pairs and masks.
        negatives_buffer: number of tokenized documents kept in memory to draw
            random-next segments from (about half before and half after the
            current document in the stream).
        seed: seed of all random choices.

    Examples:

    >>> config = PretrainingConfig(seq_len=512, max_predictions_per_seq=76)
    >>> config.to_dict()["seq_len"]
    512
    """

    seq_len: int = 128
    short_seq_prob: float = 0.1
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20
    whole_word_mask: bool = False
    random_next_prob: float = 0.5
    dupe_factor: int = 1
    negatives_buffer: int = 1000
    seed: int = 12345

    def __post_init__(self):
        _check_int(self, "seq_len", 5)
        _check_int(self, "max_predictions_per_seq", 1, self.seq_len - 3)
        _check_int(self, "dupe_factor", 1)
        _check_int(self, "negatives_buffer", 2)
        _check_int(self, "seed", 0)
        _check_rate(self, "short_seq_prob", 0.0)
        _check_rate(self, "random_next_prob", 0.0)
        _check_rate(self, "masked_lm_prob", None)
        if not isinstance(self.whole_word_mask, bool):
            raise KbertError(
                f"PretrainingConfig.whole_word_mask: expected true or false, "
                f"got {self.whole_word_mask!r}"
            )

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values, source="PretrainingConfig"):
        """Build from `to_dict()`'s output; unknown keys are an error."""
        if not isinstance(values, dict):
            raise KbertError(f"{source}: expected an object, got {type(values).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise KbertError(f"{source}: unknown field(s) {', '.join(unknown)}")
        return cls(**values)


def check_batch_size(batch_size):
    """Raise `KbertError` unless `batch_size` is a positive int (both datasets)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise KbertError(f"batch_size: expected a positive integer, got {batch_size!r}")


def _check_int(config, name, low, high=None):
    value = getattr(config, name)
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise KbertError(f"PretrainingConfig.{name}: expected an integer {bound}, got {value!r}")


def _check_rate(config, name, low):
    value = getattr(config, name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if low is None:  # an open lower bound: 0 predictions makes no sense
        if not ok or not 0.0 < value <= 1.0:
            raise KbertError(f"PretrainingConfig.{name}: expected a rate in (0, 1], got {value!r}")
    elif not ok or not low <= value <= 1.0:
        raise KbertError(f"PretrainingConfig.{name}: expected a rate in [0, 1], got {value!r}")
