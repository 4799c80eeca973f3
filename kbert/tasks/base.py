"""The interface `kbert.finetune` drives; one subclass per task."""

import math
from typing import ClassVar

import numpy as np

INPUTS = ("token_ids", "segment_ids", "padding_mask")


class Task:
    """A fine-tuning task.

    Subclasses set `name` (the model-dir task), `metric` (the evaluation key
    that picks the best epoch; higher is better) and `default_seq_len`, and
    implement the methods below. Options (column names, QA windowing, ...) are
    constructor keyword arguments.
    """

    name = None
    metric = None
    default_seq_len = 128
    # Whether `metric` is already in percent (else a fraction, shown x100).
    metric_in_percent = False
    # The options that shape predictions: `finetune` saves them in the model
    # dir's config.json, and evaluate, predict and export read them back.
    saved_options = ()
    # Columns of a prediction input file (text, second text) when none are named.
    input_columns = (None, None)
    # Options of evaluation named as the training option they set: evaluate's
    # `articles` is QA's `eval_articles`.
    evaluate_aliases: ClassVar[dict] = {}

    def options(self):
        """The `saved_options` with their values (JSON-ready)."""
        return {name: getattr(self, name) for name in self.saved_options}

    def read(self, path, labelled=True, split="train"):
        """Read a data file (`split`: "train" or "eval"); raises `DataError`
        naming the file and line."""
        raise NotImplementedError

    def make_labels(self, train, eval=None):
        """Label names in id order from the training (and eval) data, or None."""
        return None

    def configure(self, labels):
        """Settle what depends on the labels (e.g. the metric of a regressor)."""

    def build(self, encoder, labels, dropout):
        """The task model on `encoder`."""
        raise NotImplementedError

    def matches(self, model, labels):
        """Whether an existing model of this task can go on training as is."""
        return False

    def compile_args(self, labels):
        """`loss` (and `loss_weights`) for `model.compile`."""
        raise NotImplementedError

    def features(self, data, tokenizer, labels, seq_len, training=False):
        """Model windows of `data` as a dict of NumPy arrays: the inputs
        `token_ids`, `segment_ids`, `padding_mask` (int32 `[n, seq_len]`) and
        what `targets` and `score` need. Backend-free once computed, so they
        can be saved and trained on elsewhere."""
        raise NotImplementedError

    def targets(self, features):
        """The `y` of `model.fit` for `features` (the compile_args' losses)."""
        raise NotImplementedError

    def score(self, data, features, outputs, labels):
        """Metrics dict of the model `outputs` on `features` of labelled `data`."""
        raise NotImplementedError

    def train_dataset(self, data, tokenizer, labels, seq_len, batch_size, seed):
        """`(dataset, num_batches)`: shuffled `(x, y)` batches."""
        import tensorflow as tf

        f = self.features(data, tokenizer, labels, seq_len, training=True)
        n = len(f["token_ids"])
        ds = tf.data.Dataset.from_tensor_slices((model_inputs(f), self.targets(f)))
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(batch_size)
        return ds.prefetch(tf.data.AUTOTUNE), math.ceil(n / batch_size)

    def evaluate(self, model, data, tokenizer, labels, seq_len, batch_size):
        """Metrics dict over labelled `data`."""
        f = self.features(data, tokenizer, labels, seq_len)
        return self.score(data, f, predict_arrays(model, model_inputs(f), batch_size), labels)

    def predict(self, model, tokenizer, labels, seq_len, texts, pairs=None, batch_size=32):
        """A JSON-ready dict per input."""
        raise NotImplementedError

    def takes_pair(self, data):
        """Whether the serving signature takes `text_pair` for models trained on `data`."""
        return False

    def serving_texts(self, data, pair=False):
        """The raw-string inputs of the serving signature for `data`:
        `{"text": [...]}` (and `"text_pair"`)."""
        raise NotImplementedError

    def serving_agreement(self, data, features, outputs, served):
        """Fraction of `data` where the serving signature's answers (`served`:
        its outputs on `serving_texts(data)`, strings decoded) are the ones
        Python prediction gives for the model `outputs` on `features`; None
        when the task's served outputs are only logits (compared elsewhere)."""


def model_inputs(features):
    """The encoder inputs of a features dict."""
    return {k: features[k] for k in INPUTS}


def predict_arrays(model, inputs, batch_size):
    """Run `model` on a dict of NumPy input arrays (compiled, no progress bar);
    returns NumPy outputs (dicts stay dicts)."""
    outputs = model.predict(inputs, batch_size=batch_size, verbose=0)
    if isinstance(outputs, dict):
        return {k: np.asarray(v) for k, v in outputs.items()}
    return np.asarray(outputs)


def softmax(logits):
    logits = np.asarray(logits, np.float64)
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)
