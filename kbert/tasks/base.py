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
        """Metrics dict over labelled `data` (batches trimmed to their longest
        row: see `predict_arrays`)."""
        f = self.features(data, tokenizer, labels, seq_len)
        return self.score(data, f, predict_arrays(model, model_inputs(f), batch_size, trim=True), labels)

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


# A trimmed batch's length is rounded up to a multiple of this: it bounds the
# shapes the predict function sees (and, when they differ, TensorFlow relaxes
# the traced signature after the second one).
LENGTH_STEP = 8


def predict_arrays(model, inputs, batch_size, trim=False):
    """Run `model` on a dict of NumPy input arrays; returns NumPy outputs
    (dicts stay dicts).

    Each batch is one `model.predict_on_batch` call (Keras' compiled predict
    function) of exactly `batch_size` rows (fewer only when all of `inputs`
    are fewer): the last batch is filled up with copies of one of its rows,
    so the function is traced once, not again for the remainder as
    `model.predict` does, and no `tf.data` pipeline is built per call.
    Measured (MiniLM, 500 SST-2 rows at seq 64, batch 64, 1 thread, CPU
    seconds): `model.predict` 11.7 cold / 8.8 warm, this 10.2 / 8.7.

    Args:
        model: a kbert model (inputs `token_ids`, `segment_ids`, `padding_mask`).
        inputs: dict of int arrays `[n, seq_len]`.
        batch_size: rows per call.
        trim: sort the rows by length and cut each batch to its longest row
            (rounded up to 8 tokens): real tokens get the same outputs, within
            float32 rounding (a padded key weighs ~1e-13 of the largest in
            attention, see `kbert.layers.transformer.mask_scores`), for a
            fraction of the compute on short texts (the 500 SST-2 rows: 4.0 s
            instead of 8.7 s, max logit difference 6e-8). Outputs with a
            sequence axis are filled back to `seq_len` with zeros. For metrics
            and predictions; exports are compared with untrimmed outputs.
    """
    inputs = {k: np.asarray(v) for k, v in inputs.items()}
    n, seq_len = inputs["padding_mask"].shape
    if n == 0:
        return _plain(model.predict_on_batch(inputs))
    sequence = _sequence_outputs(model) if trim else None
    trim = sequence is not None
    lengths = inputs["padding_mask"].sum(axis=1)
    order = np.argsort(-lengths, kind="stable") if trim else np.arange(n)
    rows = min(int(batch_size), n)
    outputs = None
    for start in range(0, n, rows):
        index = order[start:start + rows]
        cut = seq_len
        if trim:
            cut = min(seq_len, max(LENGTH_STEP, -(-int(lengths[index].max()) // LENGTH_STEP) * LENGTH_STEP))
        batch = {k: v[index, :cut] for k, v in inputs.items()}
        if len(index) < rows:
            batch = {k: np.concatenate([v, np.repeat(v[:1], rows - len(index), axis=0)]) for k, v in batch.items()}
        result = model.predict_on_batch(batch)
        flat = result if isinstance(result, dict) else {None: result}
        if outputs is None:
            outputs = {}
            for k, v in flat.items():
                v = np.asarray(v)
                shape = (seq_len, *v.shape[2:]) if trim and k in sequence else v.shape[1:]
                outputs[k] = np.zeros((n, *shape), v.dtype)
        for k, v in flat.items():
            v = np.asarray(v)[:len(index)]
            if trim and k in sequence:
                outputs[k][index, :v.shape[1]] = v
            else:
                outputs[k][index] = v
    return outputs if isinstance(result, dict) else outputs[None]


def _plain(outputs):
    if isinstance(outputs, dict):
        return {k: np.asarray(v) for k, v in outputs.items()}
    return np.asarray(outputs)


def _sequence_outputs(model):
    """The outputs (their dict keys; None for a single output) whose axis 1 is
    the sequence: unknown in the model's symbolic output (kbert models are built
    for any length). None when the model has no symbolic output to tell."""
    try:
        output = model.output
    except (AttributeError, ValueError):
        return None
    flat = output if isinstance(output, dict) else {None: output}
    return {k for k, v in flat.items() if len(v.shape) >= 2 and v.shape[1] is None}


def softmax(logits):
    logits = np.asarray(logits, np.float64)
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)
