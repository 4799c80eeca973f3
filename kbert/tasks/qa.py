"""Extractive question answering on SQuAD v1.1 / v2.0 JSON.

Prediction and serving are one algorithm: the windows come from
`BertTokenizer.pack_windows` (through `encode_squad` here, in the graph in
`kbert.tasks.serving.qa`) and the answer from `select_spans`, which both run.
Evaluation scores with `kbert.data.squad.postprocess`, NumPy code that needs
no TensorFlow (features and outputs can come from another backend) and picks
the same spans (tests hold the two together).
"""

from typing import ClassVar

import numpy as np

from kbert.errors import KbertError
from kbert.tasks.base import Task, model_inputs, predict_arrays

# Windows scored per `select_spans` call in `QaTask.predict` (each takes
# seq_len * max_answer_length floats).
_SELECT_WINDOWS = 256


def parse_articles(text):
    """`"0:38"` -> `slice(0, 38)`; `"38:"` -> `slice(38, None)`; None -> None."""
    if text is None or isinstance(text, slice):
        return text
    parts = str(text).split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, stop = (int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise KbertError(f"articles: expected START:STOP (e.g. 0:38 or 38:), got {text!r}") from None
    return slice(start, stop)


def select_spans(start_logits, end_logits, max_context, is_context, example_index, num_examples,
                 max_answer_length=30, version_2=False, null_threshold=0.0):
    """The answer span of each example over its windows, in TensorFlow.

    `postprocess`'s rules (`kbert.data.squad`): a span is allowed when its
    start token has its max context in the window, its end token is a context
    token of the same window, `start <= end` and it has at most
    `max_answer_length` tokens; its score is `start_logit + end_logit`
    (float32), and the best span over the example's windows wins, the first
    in (window, start, length) order on equal scores. The null score is the
    smallest `start_logits[0] + end_logits[0]` over the windows; an example
    with no allowed span, or (with `version_2`) whose null score beats the
    best span by more than `null_threshold`, gets no span (answer "").

    Graph-safe: the QA serving signature runs it, and so does
    `QaTask.predict` (eagerly).

    Args:
        start_logits, end_logits: float `[windows, seq_len]`.
        max_context: bool `[windows, seq_len]`.
        is_context: bool `[windows, seq_len]`, the context tokens.
        example_index: int `[windows]`, the example of each window, windows of
            an example consecutive and in order.
        num_examples: int (or scalar tensor).
        max_answer_length: int >= 1.
        version_2: bool. SQuAD 2.0: allow no answer.
        null_threshold: float.

    Returns:
        A dict of `[num_examples]` tensors: `found` (bool: a span, not ""),
        `window` (int32 row of the span's window), `start`, `end` (int32
        positions of its first and last token in that row), `score`
        (float32: the span's, or the null score when not found) and
        `null_score`.
    """
    import tensorflow as tf

    if int(max_answer_length) < 1:
        raise KbertError(f"max_answer_length: expected an integer >= 1, got {max_answer_length!r}")
    start = tf.cast(start_logits, tf.float32)
    end = tf.cast(end_logits, tf.float32)
    windows, length = tf.shape(start)[0], tf.shape(start)[1]
    width = tf.minimum(int(max_answer_length), length)
    never = tf.constant(-np.inf, tf.float32)
    start_ok = tf.where(tf.cast(max_context, tf.bool), start, never)
    end_ok = tf.where(tf.cast(is_context, tf.bool), end, never)
    # Span (s, s + d), d < width: the end logit d tokens on, -inf past the row.
    padded = tf.concat([end_ok, tf.fill([windows, width - 1], never)], axis=1)
    ends = tf.gather(padded, tf.range(length)[:, None] + tf.range(width)[None, :], axis=1)
    size = length * width
    scores = tf.reshape(start_ok[:, :, None] + ends, [windows, size])

    # Best of each window (first index on ties), then of each example (first window).
    window_best = tf.reduce_max(scores, axis=1)
    window_arg = tf.reduce_min(tf.where(tf.equal(scores, window_best[:, None]), tf.range(size)[None, :], size),
                               axis=1)
    example_index = tf.cast(example_index, tf.int32)
    best = tf.math.unsorted_segment_max(window_best, example_index, num_examples)
    rows = tf.range(windows)
    top = tf.equal(window_best, tf.gather(best, example_index))
    window = tf.math.unsorted_segment_min(tf.where(top, rows, windows), example_index, num_examples)
    window = tf.minimum(window, tf.maximum(windows - 1, 0))  # every example has a window
    arg = tf.gather(window_arg, window)
    span_start = arg // width
    null_score = tf.math.unsorted_segment_min(start[:, 0] + end[:, 0], example_index, num_examples)
    # (A segment max of -inf reads as the lowest float, so count finite windows.)
    found = tf.math.unsorted_segment_max(tf.cast(tf.math.is_finite(window_best), tf.int32), example_index,
                                         num_examples) > 0
    if version_2:
        # In float64, as postprocess compares Python floats.
        margin = tf.cast(null_score, tf.float64) - tf.cast(best, tf.float64)
        found = found & ~(margin > float(null_threshold))
    return {
        "found": found,
        "window": window,
        "start": span_start,
        "end": span_start + arg % width,
        "score": tf.where(found, best, null_score),
        "null_score": null_score,
    }


class QaTask(Task):
    """Extractive QA: start/end logits over question + context windows.

    Args:
        doc_stride: context tokens between the starts of two windows.
        max_query_length: question pieces kept.
        max_answer_length: longest answer, in pieces, at prediction.
        n_best: answers listed per question by evaluation's post-processing.
        null_threshold: SQuAD v2: answer "" when the no-answer score beats the
            best span by more than this.
        version_2: whether the model may answer "" (SQuAD v2). Default:
            whether the training data has unanswerable questions; evaluation
            also allows "" on data that has them.
        articles: `START:STOP` slice of the training file's articles to use.
        eval_articles: the same for the evaluation file (e.g. `0:38` and
            `38:` split one SQuAD file into train and eval).
    """

    name = "qa"
    metric = "f1"
    metric_in_percent = True
    default_seq_len = 384
    saved_options = ("doc_stride", "max_query_length", "max_answer_length", "n_best", "null_threshold",
                     "version_2")
    input_columns = ("question", "context")
    evaluate_aliases: ClassVar[dict] = {"articles": "eval_articles"}

    def __init__(self, doc_stride=128, max_query_length=64, max_answer_length=30, n_best=20,
                 null_threshold=0.0, version_2=None, articles=None, eval_articles=None):
        self.doc_stride = int(doc_stride)
        self.max_query_length = int(max_query_length)
        self.max_answer_length = int(max_answer_length)
        self.n_best = int(n_best)
        self.null_threshold = float(null_threshold)
        self.version_2 = None if version_2 is None else bool(version_2)
        self.articles = parse_articles(articles)
        self.eval_articles = parse_articles(eval_articles)

    def read(self, path, labelled=True, split="train"):
        from kbert.data.squad import read_squad

        return read_squad(path, articles=self.articles if split == "train" else self.eval_articles)

    def make_labels(self, train, eval=None):
        # QA has no labels; what the training data settles is whether the
        # model learns to answer "" (saved with the model for prediction).
        if self.version_2 is None:
            self.version_2 = any(e.is_impossible for e in train)

    def build(self, encoder, labels, dropout):
        from kbert.models import BertQuestionAnswerer

        return BertQuestionAnswerer(encoder)

    def matches(self, model, labels):
        return True

    def compile_args(self, labels):
        import keras

        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        # The mean of the start and end losses, as BERT's run_squad.
        return {
            "loss": {"start_logits": loss, "end_logits": loss},
            "loss_weights": {"start_logits": 0.5, "end_logits": 0.5},
        }

    def features(self, data, tokenizer, labels, seq_len, training=False):
        from kbert.data.squad import SquadFeatures, encode_squad

        f = encode_squad(
            data, tokenizer, seq_len=seq_len, doc_stride=self.doc_stride,
            max_query_length=self.max_query_length, training=training,
        )
        if training:  # fine-tuning reports them (metrics.json "train")
            self.unlocated = [data[i].id for i in f.skipped]
        return {k: getattr(f, k) for k in SquadFeatures.FIELDS}

    def targets(self, features):
        return {"start_logits": features["start_positions"], "end_logits": features["end_positions"]}

    def _answers(self, examples, features, outputs):
        from kbert.data.squad import SquadFeatures, postprocess

        version_2 = bool(self.version_2) or any(e.is_impossible for e in examples)
        return postprocess(
            examples, SquadFeatures(**features), outputs["start_logits"], outputs["end_logits"],
            n_best=self.n_best, max_answer_length=self.max_answer_length, version_2=version_2,
            null_threshold=self.null_threshold,
        ), version_2

    def score(self, data, features, outputs, labels):
        from kbert import metrics
        from kbert.data.squad import prediction_texts

        predictions, version_2 = self._answers(data, features, outputs)
        texts = prediction_texts(predictions)
        golds = {e.id: [a["text"] for a in e.answers] for e in data}
        if version_2:
            return metrics.squad_v2_metrics(texts, {e.id: ([] if e.is_impossible else golds[e.id]) for e in data})
        return metrics.squad_metrics(texts, golds)

    def spans(self, examples, features, outputs):
        """`predict`'s answer of each example: `{"answer", "score", "start",
        "end"}` from the model `outputs` on its `features` (`select_spans`
        with this task's options; character offsets into the context, -1
        for "")."""
        example_index = np.asarray(features["example_index"])
        first = np.flatnonzero(np.r_[True, np.diff(example_index) != 0])  # each example's first window
        stop = np.r_[first[1:], len(example_index)]
        results = []
        g = 0
        while g < len(first):
            # Whole examples, up to _SELECT_WINDOWS windows (at least one example).
            h = g + 1
            while h < len(first) and stop[h] - first[g] <= _SELECT_WINDOWS:
                h += 1
            rows = slice(first[g], stop[h - 1])
            best = select_spans(
                outputs["start_logits"][rows], outputs["end_logits"][rows], features["max_context"][rows],
                features["token_char_start"][rows] >= 0, np.repeat(np.arange(h - g), stop[g:h] - first[g:h]),
                h - g, self.max_answer_length, bool(self.version_2), self.null_threshold,
            )
            best = {k: v.numpy() for k, v in best.items()}
            for i in range(h - g):
                example = examples[int(example_index[first[g + i]])]
                row = first[g] + int(best["window"][i])
                begin, end = -1, -1
                if best["found"][i]:
                    begin = int(features["token_char_start"][row, best["start"][i]])
                    end = int(features["token_char_end"][row, best["end"][i]])
                results.append({"answer": example.context[begin:end] if begin >= 0 else "",
                                "score": float(best["score"][i]), "start": begin, "end": end})
            g = h
        return results

    def predict(self, model, tokenizer, labels, seq_len, texts, pairs=None, batch_size=32):
        from kbert.data.squad import SquadExample

        if pairs is None:
            raise KbertError("a QA model needs a context for each question (--context / --pair)")
        examples = [
            SquadExample(str(i), "", question, context, [], False)
            for i, (question, context) in enumerate(zip(texts, pairs))
        ]
        f = self.features(examples, tokenizer, labels, seq_len)
        return self.spans(examples, f, predict_arrays(model, model_inputs(f), batch_size, trim=True))

    def takes_pair(self, data):
        return True

    def serving_texts(self, data, pair=True):
        return {"text": [e.question for e in data], "text_pair": [e.context for e in data]}

    def serving_agreement(self, data, features, outputs, served):
        expected = self.spans(data, features, outputs)
        same = [
            e["answer"] == str(answer) and (e["start"], e["end"]) == (int(s), int(t))
            for e, answer, s, t in zip(expected, served["answer"], served["answer_start"], served["answer_end"])
        ]
        return float(np.mean(same)) if same else 1.0
