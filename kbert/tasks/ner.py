"""Named-entity recognition (token tagging) on CoNLL-format data."""

import math

from kbert.errors import KbertError
from kbert.tasks.base import Task, predict_arrays

SCHEMES = ("IOB1", "IOB2", "BIOES")


class NerTask(Task):
    """Token tagging: one tag per word, predicted at the word's first piece.

    Args:
        tag_column: column of the tag in the CoNLL file (default: the last).
        word_column: column of the word (default: the first).
        scheme: tagging scheme the model learns and outputs (IOB2 by default;
            IOB1 or BIOES). Input files in any of the three are converted.
        stride: words of left context repeated when a long sentence is split
            into windows (see `kbert.data.ner.encode_ner`).
    """

    name = "ner"
    metric = "f1"
    default_seq_len = 128

    def __init__(self, tag_column=-1, word_column=0, scheme="IOB2", stride=None):
        if scheme not in SCHEMES:
            raise KbertError(f"scheme: expected one of {list(SCHEMES)}, got {scheme!r}")
        self.tag_column = int(tag_column)
        self.word_column = int(word_column)
        self.scheme = scheme
        self.stride = stride

    def read(self, path, labelled=True, split="train"):
        from kbert.data.ner import convert_tags, detect_scheme, read_conll

        sentences = read_conll(path, tag_column=self.tag_column, word_column=self.word_column)
        source = detect_scheme([s.tags for s in sentences])
        if source == self.scheme:
            return sentences
        return [s._replace(tags=convert_tags(s.tags, source, self.scheme)) for s in sentences]

    def make_labels(self, train, eval=None):
        from kbert.data.ner import label_list

        return label_list(list(train) + list(eval or []))

    def build(self, encoder, labels, dropout):
        from kbert.models import BertTagger

        return BertTagger(encoder, num_labels=len(labels), dropout=dropout)

    def matches(self, model, labels):
        return model.num_labels == len(labels)

    def compile_args(self, labels):
        import keras

        return {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}

    def _features(self, sentences, tokenizer, labels, seq_len):
        from kbert.data.ner import encode_ner

        return encode_ner(
            sentences, tokenizer, {t: i for i, t in enumerate(labels)}, seq_len=seq_len, stride=self.stride,
        )

    def train_dataset(self, data, tokenizer, labels, seq_len, batch_size, seed):
        import tensorflow as tf

        f = self._features(data, tokenizer, labels, seq_len)
        inputs = {k: f[k] for k in ("token_ids", "segment_ids", "padding_mask")}
        ds = tf.data.Dataset.from_tensor_slices((inputs, f["labels"], f["label_weights"]))
        ds = ds.shuffle(len(f["labels"]), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size).map(_mean_over_labelled_tokens).prefetch(tf.data.AUTOTUNE)
        return ds, math.ceil(len(f["labels"]) / batch_size)

    def _tags(self, model, sentences, tokenizer, labels, seq_len, batch_size):
        from kbert.data.ner import decode_ner

        f = self._features(sentences, tokenizer, labels, seq_len)
        inputs = {k: f[k] for k in ("token_ids", "segment_ids", "padding_mask")}
        logits = predict_arrays(model, inputs, batch_size)
        return decode_ner(logits.argmax(-1), f, sentences, labels)

    def evaluate(self, model, data, tokenizer, labels, seq_len, batch_size):
        from kbert import metrics

        predicted = self._tags(model, data, tokenizer, labels, seq_len, batch_size)
        return metrics.ner_metrics([s.tags for s in data], predicted)

    def predict(self, model, tokenizer, labels, seq_len, texts, pairs=None, batch_size=32):
        from kbert.data.ner import Sentence, entities, split_words

        words = [split_words(text) for text in texts]
        outside = "O" if "O" in labels else labels[0]
        sentences = [
            Sentence([w for w, _, _ in ws], [outside] * len(ws), 1, "<input>")
            for ws in words
        ]
        keep = [i for i, s in enumerate(sentences) if s.words]
        tags = [[] for _ in sentences]
        if keep:
            predicted = self._tags(model, [sentences[i] for i in keep], tokenizer, labels, seq_len, batch_size)
            for i, t in zip(keep, predicted):
                tags[i] = t
        return [
            {"entities": entities(ws, t, text), "words": [w for w, _, _ in ws], "tags": t}
            for ws, t, text in zip(words, tags, texts)
        ]


def _mean_over_labelled_tokens(x, y, w):
    """Scale each batch's token weights to average 1, so Keras' loss reduction
    (sum / number of slots) is the mean cross-entropy over labelled tokens, as
    in the reference implementations."""
    import tensorflow as tf

    w = tf.cast(w, tf.float32)
    return x, y, w * tf.cast(tf.size(w), tf.float32) / tf.maximum(tf.reduce_sum(w), 1.0)

