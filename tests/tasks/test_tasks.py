"""The task interface: features → targets → score, the parts `kbert.finetune`
and `Task.evaluate` are made of."""

import numpy as np
import pytest

from kbert.data.ner import Sentence
from kbert.data.squad import SquadExample
from kbert.tasks import get_task
from kbert.tasks.base import model_inputs


def test_ner_targets_mask_all_but_first_pieces_and_the_loss_averages_labelled_tokens(tok):
    task = get_task("ner")
    sentences = [Sentence(["Blackburn", "wins"], ["B-PER", "O"], 1, "x"), Sentence(["EU"], ["B-ORG"], 3, "x")]
    labels = ["O", "B-ORG", "B-PER"]
    f = task.features(sentences, tok, labels, 16)
    y = task.targets(f)
    assert (y[f["label_weights"] == 0] == -1).all()
    assert sorted(y[y >= 0].tolist()) == [0, 1, 2]
    # The loss is the mean cross-entropy over the 3 labelled tokens, whatever the padding.
    logits = np.random.default_rng(0).normal(size=y.shape + (3,)).astype("float32")
    loss = float(task.compile_args(labels)["loss"](y, logits))
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    assert loss == pytest.approx(-np.mean([logp[i, j, y[i, j]] for i, j in zip(*np.nonzero(y >= 0))]), rel=1e-5)


def test_ner_score_reads_the_tag_at_each_words_first_piece(tok):
    task = get_task("ner")
    sentences = [Sentence(["Blackburn", "wins"], ["B-PER", "O"], 1, "x")]
    labels = ["O", "B-PER"]
    f = task.features(sentences, tok, labels, 16)
    outputs = np.zeros(f["token_ids"].shape + (2,), "float32")
    outputs[..., 0] = 1.0
    first = np.flatnonzero(f["label_weights"][0])[0]
    outputs[0, first] = [0.0, 1.0]
    assert task.score(sentences, f, outputs, labels)["f1"] == 1.0
    outputs[0, first] = [1.0, 0.0]
    assert task.score(sentences, f, outputs, labels)["f1"] == 0.0


def test_qa_targets_and_score_round_trip(tok):
    task = get_task("qa")
    context = "The capital of France is Paris."
    example = SquadExample("q1", "t", "What is the capital of France?", context,
                           [{"text": "Paris", "answer_start": context.index("Paris")}], False)
    f = task.features([example], tok, None, 32, training=True)
    y = task.targets(f)
    start, end = int(y["start_logits"][0]), int(y["end_logits"][0])
    assert tok.detokenize([f["token_ids"][0][start:end + 1]])[0] == "paris"
    logits = {k: np.full(f["token_ids"].shape, -5.0, "float32") for k in ("start_logits", "end_logits")}
    logits["start_logits"][0, start] = logits["end_logits"][0, end] = 5.0
    assert task.score([example], f, logits, None) == {"exact_match": 100.0, "f1": 100.0, "total": 1}


def test_classify_features_match_the_in_graph_dataset(tok, tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\ngood film\t1\nbad\t0\n", encoding="utf-8")
    task = get_task("classify")
    data = task.read(str(path))
    labels = task.make_labels(data)
    f = task.features(data, tok, labels, 8)
    assert f["token_ids"].shape == (2, 8) and task.targets(f).tolist() == [1, 0]
    ds, batches = task.train_dataset(data, tok, labels, 8, 2, seed=0)
    x, y = next(iter(ds))
    order = np.argsort(y.numpy())[::-1]
    for k, v in model_inputs(f).items():
        np.testing.assert_array_equal(x[k].numpy()[order], v)
    assert task.score(data, f, np.array([[0.0, 1.0], [1.0, 0.0]]), labels)["accuracy"] == 1.0
