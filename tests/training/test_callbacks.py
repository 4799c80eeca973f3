"""The fine-tuning evaluator's evaluation (its best-epoch and early-stopping
bookkeeping is in test_finetune.py)."""

import keras
import pytest

from kbert.config import BertConfig
from kbert.tasks import get_task
from kbert.training.callbacks import EpochEvaluator


def classify_setup(tok, tmp_path, rows):
    """A classify task configured on `rows` (eval TSV lines) and a tiny seeded classifier."""
    from kbert.models import BertClassifier, BertEncoder

    path = tmp_path / "dev.tsv"
    path.write_text("sentence\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    task = get_task("classify")
    data = task.read(str(path), split="eval")
    labels = task.make_labels(data)
    task.configure(labels)
    keras.utils.set_random_seed(0)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_layers=1, num_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    return task, data, labels, BertClassifier(BertEncoder(config), num_classes=2)


def test_eval_data_is_tokenized_once_and_scored_as_the_task_does(tok, tmp_path):
    rows = ["a gripping, funny film\t1", "dull and far too long\t0", "the plot is thin\t0", "great cast\t1",
            "i loved every minute of it\t1"]
    task, data, labels, model = classify_setup(tok, tmp_path, rows)
    calls = []
    features = task.features
    task.features = lambda *args, **kwargs: calls.append(1) or features(*args, **kwargs)
    evaluator = EpochEvaluator(task, data, tok, labels, 16, 2, patience=None)
    evaluator.set_model(model)
    for epoch in range(3):
        evaluator.on_epoch_end(epoch, {"loss": 1.0})
    assert len(calls) == 1
    expected = task.evaluate(model, data, tok, labels, 16, 2)
    assert [h["eval"] for h in evaluator.history] == [pytest.approx(expected)] * 3


def test_predict_function_is_traced_once_for_batches_of_any_length(tok, tmp_path):
    # Trimmed batches differ in length (the longest rows first, then short ones):
    # without a first trace for any shape, the second length traces again.
    rows = [" ".join(["a gripping, funny film"] * 4) + "\t1", " ".join(["dull and far too long"] * 3) + "\t0",
            "the plot is thin\t0", "great cast\t1", "i loved it\t1"]
    task, data, labels, model = classify_setup(tok, tmp_path, rows)
    evaluator = EpochEvaluator(task, data, tok, labels, 32, 2, patience=None)
    evaluator.set_model(model)
    evaluator.on_epoch_end(0, {"loss": 1.0})
    lengths = evaluator._features["padding_mask"].sum(axis=1)
    assert lengths.max() > 16 and lengths.min() <= 8  # batches of 24 and 8 tokens at least
    assert model.predict_function.experimental_get_tracing_count() == 1
    assert evaluator.history[0]["eval"] == pytest.approx(task.evaluate(model, data, tok, labels, 32, 2))
