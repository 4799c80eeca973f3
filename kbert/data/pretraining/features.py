"""The pre-training example format both datasets produce.

An example is a dict of features: int `token_ids` (masked), `segment_ids`,
`padding_mask` (`[seq_len]`), int `mask_positions`, `mask_ids` and float
`mask_weights` (`[max_predictions_per_seq]`), and int `nsp_label` (`[1]` in a
record, `[]` in a batch row). `write_tfrecords` stores it (parsed back with
`feature_spec`), `dynamic_dataset` builds it in the graph, and both hand it to
Keras through `to_keras`, so `BertPretrainer` sees identical elements from
either (and a traced train step is reused when switching between them).
"""

import tensorflow as tf


def feature_spec(config):
    """The `tf.io.parse_example` spec of a stored example for a `PretrainingConfig`."""
    seq, pred = config.seq_len, config.max_predictions_per_seq
    return {
        "token_ids": tf.io.FixedLenFeature([seq], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([seq], tf.int64),
        "padding_mask": tf.io.FixedLenFeature([seq], tf.int64),
        "mask_positions": tf.io.FixedLenFeature([pred], tf.int64),
        "mask_ids": tf.io.FixedLenFeature([pred], tf.int64),
        "mask_weights": tf.io.FixedLenFeature([pred], tf.float32),
        "nsp_label": tf.io.FixedLenFeature([1], tf.int64),
    }


def to_keras(features):
    """A batch of feature dicts -> Keras `(x, y, sample_weight)` for `BertPretrainer`.

    x holds int32 `token_ids`, `segment_ids`, `padding_mask` and
    `mask_positions` (keras-hub's names); y = {"mlm": int32 original ids at the
    masked positions, "nsp": int32 `[batch]` label}; sample_weight = {"mlm":
    float32 mask weights, "nsp": float32 ones}.
    """
    x = {
        name: tf.cast(features[name], tf.int32)
        for name in ("token_ids", "segment_ids", "padding_mask", "mask_positions")
    }
    nsp = tf.reshape(tf.cast(features["nsp_label"], tf.int32), [-1])
    y = {"mlm": tf.cast(features["mask_ids"], tf.int32), "nsp": nsp}
    weights = {
        "mlm": tf.cast(features["mask_weights"], tf.float32),
        "nsp": tf.ones_like(nsp, tf.float32),
    }
    return x, y, weights
