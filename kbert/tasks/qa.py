"""Extractive question answering on SQuAD v1.1 / v2.0 JSON."""

from kbert.errors import KbertError
from kbert.tasks.base import Task, model_inputs, predict_arrays


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


class QaTask(Task):
    """Extractive QA: start/end logits over question + context windows.

    Args:
        doc_stride: context tokens between the starts of two windows.
        max_query_length: question pieces kept.
        max_answer_length: longest answer, in pieces, at prediction.
        n_best: start/end candidates per window at prediction.
        null_threshold: SQuAD v2: answer "" when the no-answer score beats the
            best span by more than this.
        articles: `START:STOP` slice of the training file's articles to use.
        eval_articles: the same for the evaluation file (e.g. `0:38` and
            `38:` split one SQuAD file into train and eval).
    """

    name = "qa"
    metric = "f1"
    default_seq_len = 384

    def __init__(self, doc_stride=128, max_query_length=64, max_answer_length=30, n_best=20,
                 null_threshold=0.0, articles=None, eval_articles=None):
        self.doc_stride = int(doc_stride)
        self.max_query_length = int(max_query_length)
        self.max_answer_length = int(max_answer_length)
        self.n_best = int(n_best)
        self.null_threshold = float(null_threshold)
        self.articles = parse_articles(articles)
        self.eval_articles = parse_articles(eval_articles)

    def read(self, path, labelled=True, split="train"):
        from kbert.data.squad import read_squad

        return read_squad(path, articles=self.articles if split == "train" else self.eval_articles)

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
        return {k: getattr(f, k) for k in SquadFeatures.FIELDS}

    def targets(self, features):
        return {"start_logits": features["start_positions"], "end_logits": features["end_positions"]}

    def _answers(self, examples, features, outputs):
        from kbert.data.squad import SquadFeatures, postprocess

        version_2 = any(e.is_impossible for e in examples)
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

    def predict(self, model, tokenizer, labels, seq_len, texts, pairs=None, batch_size=32):
        from kbert.data.squad import SquadExample

        if pairs is None:
            raise KbertError("a QA model needs a context for each question (--context / --pair)")
        examples = [
            SquadExample(str(i), "", question, context, [], False)
            for i, (question, context) in enumerate(zip(texts, pairs))
        ]
        f = self.features(examples, tokenizer, labels, seq_len)
        predictions, _ = self._answers(examples, f, predict_arrays(model, model_inputs(f), batch_size))
        out = []
        for e in examples:
            p = predictions[e.id]
            out.append({"answer": p["text"], "score": float(p["score"]), "start": p["start"], "end": p["end"]})
        return out
