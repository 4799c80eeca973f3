"""The fine-tuning evaluator's evaluation (its best-epoch and early-stopping
bookkeeping is in test_finetune.py)."""

import keras
import pytest

from kbert.config import BertConfig
from kbert.tasks import get_task
from kbert.training.callbacks import EpochEvaluator


def test_eval_data_is_tokenized_once_and_scored_as_the_task_does(tok, tmp_path):
    from kbert.models import BertClassifier, BertEncoder

    path = tmp_path / "dev.tsv"
    rows = ["a gripping, funny film\t1", "dull and far too long\t0", "the plot is thin\t0", "great cast\t1",
            "i loved every minute of it\t1"]
    path.write_text("sentence\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    task = get_task("classify")
    data = task.read(str(path), split="eval")
    labels = task.make_labels(data)
    task.configure(labels)
    calls = []
    features = task.features
    task.features = lambda *args, **kwargs: calls.append(1) or features(*args, **kwargs)
    keras.utils.set_random_seed(0)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_layers=1, num_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    model = BertClassifier(BertEncoder(config), num_classes=2)
    evaluator = EpochEvaluator(task, data, tok, labels, 16, 2, patience=None)
    evaluator.set_model(model)
    for epoch in range(3):
        evaluator.on_epoch_end(epoch, {"loss": 1.0})
    assert len(calls) == 1
    expected = task.evaluate(model, data, tok, labels, 16, 2)
    assert [h["eval"] for h in evaluator.history] == [pytest.approx(expected)] * 3
