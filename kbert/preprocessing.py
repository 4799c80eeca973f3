"""`BertPreprocessor`: raw text (and labels) to model inputs, for `tf.data`."""

import os

import numpy as np
import tensorflow as tf

from kbert.errors import KbertError
from kbert.tokenization.tokenizer import BertTokenizer


class BertPreprocessor(tf.Module):
    """Turns raw text, and string labels, into what `model.fit` takes.

    A thin layer over `kbert.BertTokenizer` (TensorFlow ops only, so it runs
    eagerly, in `tf.data.Dataset.map` and in a `tf.function`), with keras-hub's
    calling convention: `preprocessor(x, y=None, sample_weight=None)` returns the
    input dict `token_ids`, `segment_ids`, `padding_mask` alone, or `(x, y)`, or
    `(x, y, sample_weight)`, so `dataset.map(preprocessor)` works on datasets of
    `text`, `(text, label)` or `(text, label, weight)` elements. `x` is a string
    or a batch (1-D) of strings, or a tuple `(text, text_pair)` of two such for
    sentence pairs (a list is a batch, a tuple is segments). Batched and
    unbatched datasets both work.

    String labels are mapped to their index in `labels`. A label missing from
    `labels` stops the pipeline with an `InvalidArgumentError` whose message
    says "unknown label" and shows it (checked in the graph, so inside
    `model.fit` it surfaces as that error from the input pipeline). Numeric
    labels pass through unchanged.

    Args:
        vocab: a `vocab.txt` path, a list of tokens, or a `kbert.BertTokenizer`
            (whose vocab and casing are used). For a model directory use
            `from_pretrained`.
        seq_len: length of every output row (longest-first truncation of pairs).
        lowercase: lowercase and strip accents (uncased models). Ignored when
            `vocab` is a tokenizer.
        labels: label names in id order, to map string labels; optional.
        name: optional module name.

    Examples:
    ```python
    preprocessor = kbert.BertPreprocessor("vocab.txt", seq_len=64, labels=["neg", "pos"])
    train_ds = tf.data.Dataset.from_tensor_slices((["a great film", "dull"], ["pos", "neg"]))
    train_ds = train_ds.batch(2).map(preprocessor)   # ({token_ids, ...}, [1, 0])
    pairs = preprocessor((["The cat sat."], ["It was tired."]))  # sentence pairs
    ```
    """

    def __init__(self, vocab, seq_len=128, lowercase=True, labels=None, name=None):
        super().__init__(name=name)
        if isinstance(vocab, BertTokenizer):
            tokenizer = vocab
        else:
            if isinstance(vocab, (str, os.PathLike)) and os.path.isdir(vocab):
                raise KbertError(
                    f"{os.fspath(vocab)}: a directory; BertPreprocessor takes a vocab.txt, a token "
                    "list or a BertTokenizer (BertPreprocessor.from_pretrained reads a model directory)"
                )
            tokenizer = BertTokenizer(vocab, lowercase=lowercase)
        self.tokenizer = tokenizer
        self.seq_len = int(seq_len)
        labels = None if labels is None else [str(label) for label in labels]
        if labels is not None:
            if not labels:
                raise KbertError("labels: expected at least one label name")
            if len(set(labels)) != len(labels):
                raise KbertError(f"labels: names must be distinct, got {labels}")
        # Kept out of tf.Module's attribute tracking, which would wrap the list.
        self._labels = self._no_dependency(None if labels is None else tuple(labels))
        self._label_table = None
        if labels is not None:
            self._label_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(labels), tf.range(len(labels), dtype=tf.int32)
                ),
                default_value=-1,
            )

    @classmethod
    def from_pretrained(cls, path, seq_len=None, labels=None, name=None):
        """The preprocessor of a model: its vocab, casing and seq_len.

        Args:
            path: a kbert model directory, or a Hugging Face BERT directory or
                hub id (vocab.txt, and `do_lower_case` from tokenizer_config.json).
            seq_len: default: the model directory's seq_len (Hugging Face: 128,
                or `max_position_embeddings` if smaller).
            labels: label names in id order, to map string labels; optional.

        Examples:
        ```python
        preprocessor = kbert.BertPreprocessor.from_pretrained("runs/minilm", seq_len=64)
        ```
        """
        from kbert.pretrained import read_source

        source = read_source(path)
        return cls(
            source.vocab, seq_len=seq_len or source.seq_len, lowercase=source.lowercase,
            labels=labels, name=name,
        )

    @property
    def lowercase(self):
        return self.tokenizer.lowercase

    @property
    def labels(self):
        """The label names in id order, or None."""
        return None if self._labels is None else list(self._labels)

    # Only Python-level branching on static structure here and in the tokenizer:
    # autograph (which tf.data.Dataset.map applies) has nothing to convert.
    @tf.autograph.experimental.do_not_convert
    def __call__(self, x, y=None, sample_weight=None):
        """Model inputs of `x`, and `y` with string labels mapped to ids.

        Returns:
            The input dict if `y` and `sample_weight` are None, else `(x, y)` or
            `(x, y, sample_weight)`.
        """
        if isinstance(x, tuple):
            if len(x) not in (1, 2):
                raise KbertError(f"x: a tuple is (text,) or (text, text_pair), got {len(x)} items")
            features = self.tokenizer(*x, seq_len=self.seq_len)
        else:
            features = self.tokenizer(x, seq_len=self.seq_len)
        if y is None and sample_weight is None:
            return features
        if y is not None:
            y = self._label_ids(y)
        return (features, y) if sample_weight is None else (features, y, sample_weight)

    def _label_ids(self, y):
        if not isinstance(y, (tf.Tensor, tf.RaggedTensor)) and np.asarray(y).dtype.kind in "USO":
            y = tf.constant(np.asarray(y))
        if not (isinstance(y, tf.Tensor) and y.dtype == tf.string):
            return y
        if self._label_table is None:
            raise KbertError(
                "labels are strings: pass labels=[...] (names in id order) to map them to ids"
            )
        ids = self._label_table.lookup(y)
        unknown = ids < 0
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(unknown)),
            ["unknown label:", tf.boolean_mask(tf.reshape(y, [-1]), tf.reshape(unknown, [-1])),
             "expected one of:", tf.constant(self._labels)],
            summarize=10,
        )
        with tf.control_dependencies([check]):
            return tf.identity(ids)

    def get_config(self):
        """The constructor arguments (the vocab as a token list)."""
        return {
            "vocab": self.tokenizer.vocab,
            "seq_len": self.seq_len,
            "lowercase": self.lowercase,
            "labels": self.labels,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
