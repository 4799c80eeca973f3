"""Named-entity recognition (token tagging) on CoNLL-format data."""

import numpy as np

from kbert.errors import KbertError
from kbert.tasks.base import Task, model_inputs, predict_arrays

SCHEMES = ("IOB1", "IOB2", "BIOES")
IGNORE = -1


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
    saved_options = ("scheme", "stride")

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

        # Unlabelled slots (later word pieces, specials, padding) carry -1 and
        # are masked; Keras then averages over the labelled tokens, as the
        # reference implementations do.
        return {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORE)}

    def features(self, data, tokenizer, labels, seq_len, training=False):
        from kbert.data.ner import encode_ner

        return encode_ner(
            data, tokenizer, {t: i for i, t in enumerate(labels)}, seq_len=seq_len, stride=self.stride,
        )

    def targets(self, features):
        return np.where(features["label_weights"] > 0, features["labels"], IGNORE).astype(np.int32)

    def _tags(self, model, sentences, tokenizer, labels, seq_len, batch_size):
        from kbert.data.ner import decode_ner

        f = self.features(sentences, tokenizer, labels, seq_len)
        logits = predict_arrays(model, model_inputs(f), batch_size, trim=True)
        return decode_ner(logits.argmax(-1), f, sentences, labels)

    def score(self, data, features, outputs, labels):
        from kbert import metrics
        from kbert.data.ner import decode_ner

        predicted = decode_ner(np.asarray(outputs).argmax(-1), features, data, labels)
        return metrics.ner_metrics([s.tags for s in data], predicted)

    def predict(self, model, tokenizer, labels, seq_len, texts, pairs=None, batch_size=32):
        from kbert.data.ner import Sentence
        from kbert.data.words import entities

        words = text_words(tokenizer, texts)
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

    def serving_texts(self, data, pair=False):
        return {"text": [" ".join(s.words) for s in data]}


def text_words(tokenizer, texts):
    """The words of raw texts, as the tokenizer splits them.

    A word is a piece that `BertTokenizer.word_starts` marks and the "##"
    pieces after it, spanning their characters
    (`BertTokenizer.tokenize_with_char_offsets`): the words whose tags the
    NER serving signature flags with `word_start`, so `kbert.predict` and
    serving tag the same words. They are `kbert.data.words.split_words`'s words
    (BERT's whitespace and punctuation split), less words the tokenizer
    drops entirely.

    Returns:
        One list per text of `(word, start, end)`, `text[start:end] == word`.
    """
    texts = list(texts)
    if not texts:
        return []
    ids, begin, end = tokenizer.tokenize_with_char_offsets(
        np.array([t.encode("utf-8", "surrogatepass") for t in texts], dtype=object))
    starts = tokenizer.word_starts(ids).to_list()
    out = []
    for text, flags, b, e in zip(texts, starts, begin.to_list(), end.to_list()):
        words = []
        for flag, first, last in zip(flags, b, e):
            if flag or not words:
                words.append([first, last])
            else:
                words[-1][1] = max(words[-1][1], last)
        out.append([(text[first:last], first, last) for first, last in words])
    return out
