"""Sequence and sentence-pair classification, and regression (one output)."""

import math

import numpy as np

from kbert.data.classification import label_ids, make_labels, read_text_data, text_dataset
from kbert.errors import DataError
from kbert.tasks.base import INPUTS, Task, model_inputs, predict_arrays, softmax


class ClassifyTask(Task):
    """Classification (cross-entropy; accuracy, F1, MCC) or, when the labels
    are real numbers, regression (MSE; Pearson, Spearman).

    Args:
        text_column, pair_column, label_column, format, header: how to read
            the files (see `kbert.data.classification.read_text_data`).
        regression: force regression (True) or classification (False);
            default: regression when the training labels are non-integer numbers.
    """

    name = "classify"
    default_seq_len = 128

    def __init__(self, text_column=None, pair_column=None, label_column=None, format=None,
                 header=True, regression=None):
        self.read_options = dict(
            text_column=text_column, pair_column=pair_column, label_column=label_column,
            format=format, header=header,
        )
        self.regression = regression
        self.metric = "accuracy"

    def read(self, path, labelled=True, split="train"):
        return read_text_data(path, require_labels=labelled, **self.read_options)

    def make_labels(self, train, eval=None):
        if train.labels is None:
            raise DataError(f"{train.source}: no label column")
        if self.regression:
            labels = None
        else:
            labels = make_labels(train.labels)
            if labels is None and self.regression is False:
                labels = sorted(set(train.labels))
        if labels is not None and len(labels) < 2:
            raise DataError(f"{train.source}: only one label ({labels[0]!r}); classification needs two or more")
        return labels

    def configure(self, labels):
        self.metric = "accuracy" if labels is not None else "pearson"

    def build(self, encoder, labels, dropout):
        from kbert.models import BertClassifier

        return BertClassifier(encoder, num_classes=len(labels) if labels else 1, dropout=dropout)

    def matches(self, model, labels):
        return model.num_classes == (len(labels) if labels else 1)

    def compile_args(self, labels):
        import keras

        if labels is None:
            return {"loss": keras.losses.MeanSquaredError()}
        return {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}

    def features(self, data, tokenizer, labels, seq_len, training=False):
        # The tokenizer called eagerly, 256 rows at a time: the ids of `text_dataset`
        # without building (and tracing) a tf.data pipeline per call (500 rows: 0.25 s
        # of CPU instead of 1.4 s the first time).
        parts = []
        for i in range(0, len(data), 256):
            pairs = data.pairs[i:i + 256] if data.pairs is not None else None
            parts.append({k: np.asarray(v) for k, v in tokenizer(data.texts[i:i + 256], pairs, seq_len=seq_len).items()})
        f = {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros((0, seq_len), np.int32)
             for k in INPUTS}
        if data.labels is not None:
            f["labels"] = np.asarray(label_ids(data, labels))
        return f

    def targets(self, features):
        return features["labels"]

    def train_dataset(self, data, tokenizer, labels, seq_len, batch_size, seed):
        # Tokenized in the tf.data graph, batch by batch.
        ds = text_dataset(data, tokenizer, seq_len, batch_size, label_ids(data, labels), shuffle=True, seed=seed)
        return ds, math.ceil(len(data) / batch_size)

    def _logits(self, model, data, tokenizer, seq_len, batch_size):
        f = self.features(data, tokenizer, None, seq_len)
        return np.asarray(predict_arrays(model, model_inputs(f), batch_size, trim=True), np.float64)

    def score(self, data, features, outputs, labels):
        from kbert import metrics

        targets = features["labels"]
        logits = np.asarray(outputs, np.float64)
        if labels is None:
            return metrics.regression_metrics(targets, logits[:, 0])
        return metrics.classification_metrics(targets, logits.argmax(-1), len(labels))

    def takes_pair(self, data):
        return data.pairs is not None

    def serving_texts(self, data, pair=False):
        texts = {"text": list(data.texts)}
        if pair:
            texts["text_pair"] = list(data.pairs)
        return texts

    def predict(self, model, tokenizer, labels, seq_len, texts, pairs=None, batch_size=32):
        from kbert.data.classification import TextData

        data = TextData(list(texts), list(pairs) if pairs is not None else None, None,
                        list(range(1, len(texts) + 1)), "<input>")
        logits = self._logits(model, data, tokenizer, seq_len, batch_size)
        if labels is None:
            return [{"score": float(row[0])} for row in logits]
        out = []
        for row in softmax(logits):
            best = int(row.argmax())
            out.append({
                "label": labels[best],
                "probability": float(row[best]),
                "probabilities": {name: float(p) for name, p in zip(labels, row)},
            })
        return out
