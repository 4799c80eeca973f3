import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import REPO
from kbert.config import BertConfig
from kbert.errors import ConfigError, DataError
from kbert.training.finetune import evaluate, finetune, predict
from kbert.model_dir import load_model, read_model_dir, save_model

WORDS = "good great fine nice bad awful poor dull the movie film plot was is very and but".split()
POSITIVE, NEGATIVE = WORDS[:4], WORDS[4:8]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *WORDS]


def sentiment_rows(n, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % 2
        word = rng.choice(POSITIVE if label else NEGATIVE)
        filler = rng.choice(WORDS[8:], size=rng.integers(2, 6))
        position = rng.integers(len(filler) + 1)
        words = [*filler[:position], word, *filler[position:]]
        rows.append((" ".join(words), "pos" if label else "neg"))
    return rows


def write_tsv(path, rows, header=("sentence", "label")):
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    from kbert.models import BertEncoder

    config = BertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
        max_position_embeddings=64,
    )
    path = tmp_path_factory.mktemp("init") / "encoder"
    keras.utils.set_random_seed(0)  # the same initial encoder in every run
    save_model(BertEncoder(config), path, vocab=VOCAB, seq_len=32)
    return str(path)


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory, encoder_dir):
    directory = tmp_path_factory.mktemp("sentiment")
    train = write_tsv(directory / "train.tsv", sentiment_rows(256, 0))
    dev = write_tsv(directory / "dev.tsv", sentiment_rows(64, 1))
    out = directory / "model"
    result = finetune(
        "classify", encoder_dir, train, out, eval=dev, epochs=8, batch_size=16, lr=2e-3,
        seq_len=16, progress=False,
    )
    return {"train": train, "dev": dev, "out": str(out), "result": result}


def test_classifier_learns_and_keeps_best_epoch(sentiment):
    info = read_model_dir(sentiment["out"])
    assert info.task == "classify" and info.labels == ["neg", "pos"] and info.seq_len == 16
    metrics = info.metrics
    history = [h["eval"]["accuracy"] for h in metrics["history"]]
    assert len(history) == 8 and metrics["best_epoch"] == 1 + int(np.argmax(history))
    assert metrics["eval"]["accuracy"] == max(history) >= 0.9, history
    for key in ("f1", "mcc"):
        assert key in metrics["eval"]
    assert os.path.isdir(os.path.join(sentiment["out"], "logs"))
    curve = os.path.join(sentiment["out"], "training_curve.png")
    with open(curve, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not os.path.exists(sentiment["out"] + ".work")
    # The saved weights are the best epoch's: evaluate reproduces its metrics.
    again = evaluate(sentiment["out"], sentiment["dev"])
    assert again["accuracy"] == pytest.approx(metrics["eval"]["accuracy"]) and again["examples"] == 64


def test_predict_gives_labels_and_probabilities(sentiment):
    out = predict(sentiment["out"], ["the movie was very great", "the plot was awful"])
    assert [o["label"] for o in out] == ["pos", "neg"]
    for o in out:
        assert sum(o["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert o["probability"] == max(o["probabilities"].values())


def test_unknown_label_in_eval_names_file_and_line(sentiment, tmp_path):
    bad = write_tsv(tmp_path / "dev.tsv", [("good film", "pos"), ("dull plot", "meh")])
    with pytest.raises(DataError, match=r"dev.tsv:3: unknown label 'meh'"):
        evaluate(sentiment["out"], bad)


def test_sequence_longer_than_model_is_a_config_error(encoder_dir, sentiment, tmp_path):
    with pytest.raises(ConfigError, match="seq_len: 65 is outside 8..64"):
        finetune("classify", encoder_dir, sentiment["train"], tmp_path / "m", seq_len=65, progress=False)
    assert not (tmp_path / "m").exists()
    # 0 is a length, not "the default": every stage rejects it the same way.
    for call in (lambda: finetune("classify", encoder_dir, sentiment["train"], tmp_path / "m", seq_len=0),
                 lambda: evaluate(sentiment["out"], sentiment["dev"], seq_len=0),
                 lambda: predict(sentiment["out"], ["good film"], seq_len=0)):
        with pytest.raises(ConfigError, match=r"^seq_len: 0 is outside 8\.\.64 \(the model's max_position_"):
            call()


def test_check_seq_len_is_the_one_range_check():
    from kbert.config import MIN_SEQ_LEN, check_seq_len

    config = BertConfig.preset("tiny", max_position_embeddings=64)
    assert check_seq_len(MIN_SEQ_LEN, config) == 8 and check_seq_len(np.int64(64), config) == 64
    for bad in (7, 65, -1):
        with pytest.raises(ConfigError, match=f"seq_len: {bad} is outside 8..64"):
            check_seq_len(bad, config)
    for bad in (16.0, "16", True, None):
        with pytest.raises(ConfigError, match="max_len: expected an integer"):
            check_seq_len(bad, config, field="max_len")


def test_regression_from_float_labels(encoder_dir, tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(96):
        k = int(rng.integers(0, 4))
        rows.append((" ".join(["good"] * k + ["the", "film"]), f"{k * 1.25:.2f}"))
    train = write_tsv(tmp_path / "sts.tsv", rows)
    result = finetune("classify", encoder_dir, train, tmp_path / "reg", eval=train, epochs=3,
                      batch_size=16, lr=2e-3, seq_len=16, progress=False, xla=True)
    info = read_model_dir(tmp_path / "reg")
    assert info.labels == [] and result["metrics"]["metric"] == "pearson"
    assert {"pearson", "spearman", "mse"} <= set(result["metrics"]["eval"])
    assert "score" in predict(tmp_path / "reg", ["good good the film"])[0]


def test_cli_finetune_evaluate_predict(sentiment, encoder_dir, tmp_path):
    def kbert(*args):
        return subprocess.run([sys.executable, "-m", "kbert.cli", *args], capture_output=True, text=True, cwd=REPO)

    out = tmp_path / "cli_model"
    proc = kbert("finetune", "classify", "--init", encoder_dir, "--train", sentiment["train"],
                 "--eval", sentiment["dev"], "--out", str(out), "--epochs", "1", "--batch-size", "32",
                 "--lr", "2e-3", "--seq-len", "16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert read_model_dir(out).labels == ["neg", "pos"]
    proc = kbert("evaluate", str(out), "--data", sentiment["dev"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(json.loads(proc.stdout)) >= {"accuracy", "f1", "mcc", "examples"}
    many = tmp_path / "inputs.txt"
    many.write_text("the plot was dull\n\nnice film\n", encoding="utf-8")
    proc = kbert("predict", str(out), "very good film", "awful", "--input", str(many))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["text"] for line in lines] == ["very good film", "awful", "the plot was dull", "nice film"]
    assert all(line["label"] in ("neg", "pos") for line in lines)
    # Bad input: one line, exit 2, nothing written.
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\ngood\tpos\nbad\n", encoding="utf-8")
    proc = kbert("finetune", "classify", "--init", encoder_dir, "--train", str(bad), "--out", str(tmp_path / "x"),
                 "--seq-len", "16")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"Error: {bad}:3: 1 columns, the header has 2"
    ], proc.stderr
    assert not (tmp_path / "x").exists()
    proc = kbert("evaluate", str(out), "--data", sentiment["dev"], "--tag-column", "3")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: tag_column: does not apply to a classify model (its options: text_column")


def write_conll(path, n, seed):
    rng = np.random.default_rng(seed)
    lines = ["-DOCSTART- -X- O", ""]
    for _ in range(n):
        words = list(rng.choice(WORDS + [",", "!"], size=rng.integers(3, 9)))
        for word in words:
            kind = "POS" if word in POSITIVE else "NEG" if word in NEGATIVE else None
            lines.append(f"{word} X {'B-' + kind if kind else 'O'}")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_ner_finetune_evaluate_predict(encoder_dir, tmp_path):
    train = write_conll(tmp_path / "train.txt", 200, 0)
    dev = write_conll(tmp_path / "dev.txt", 40, 1)
    result = finetune("ner", encoder_dir, train, tmp_path / "ner", eval=dev, epochs=6, batch_size=16,
                      lr=3e-3, seq_len=16, progress=False)
    info = read_model_dir(tmp_path / "ner")
    assert info.task == "ner" and info.labels == ["O", "B-NEG", "B-POS"]
    assert result["metrics"]["metric"] == "f1" and result["metrics"]["eval"]["f1"] >= 0.9
    assert evaluate(tmp_path / "ner", dev)["f1"] == pytest.approx(result["metrics"]["eval"]["f1"])
    [out] = predict(tmp_path / "ner", ["The movie, very Good!"])
    assert out["words"] == ["The", "movie", ",", "very", "Good", "!"]
    assert out["entities"] == [{"type": "POS", "text": "Good", "start": 16, "end": 20, "words": [4, 5]}]
    # A sentence longer than the model's windows is split, not cut: every word gets a tag.
    [long] = predict(tmp_path / "ner", [" ".join(["the good film"] * 10)])
    assert len(long["tags"]) == 30 and long["tags"][1::3] == ["B-POS"] * 10


def write_squad(path, n, seed):
    rng = np.random.default_rng(seed)
    paragraphs = []
    for i in range(n):
        words = list(rng.choice(WORDS[8:], size=rng.integers(4, 10)))
        answer = str(rng.choice(POSITIVE))
        words.insert(int(rng.integers(len(words) + 1)), answer)
        context = " ".join(words)
        start = context.index(f" {answer}") + 1 if not context.startswith(answer) else 0
        paragraphs.append({"context": context, "qas": [{
            "id": f"q{seed}-{i}", "question": "the good ?",
            "answers": [{"text": answer, "answer_start": start}],
        }]})
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}),
                    encoding="utf-8")
    return str(path)


def test_qa_finetune_evaluate_predict(encoder_dir, tmp_path):
    train = write_squad(tmp_path / "train.json", 200, 0)
    dev = write_squad(tmp_path / "dev.json", 40, 1)
    result = finetune("qa", encoder_dir, train, tmp_path / "qa", eval=dev, epochs=6, batch_size=16,
                      lr=3e-3, seq_len=24, doc_stride=8, progress=False)
    metrics = result["metrics"]
    assert read_model_dir(tmp_path / "qa").task == "qa" and metrics["metric"] == "f1"
    assert metrics["eval"]["exact_match"] >= 80 and metrics["eval"]["total"] == 40
    assert evaluate(tmp_path / "qa", dev, doc_stride=8)["f1"] == pytest.approx(metrics["eval"]["f1"])
    context = "the film was nice and the plot"
    [out] = predict(tmp_path / "qa", ["the good ?"], [context])
    assert out["answer"] == "nice" and context[out["start"]:out["end"]] == "nice"


def test_epoch_evaluator_keeps_best_and_stops_early():
    from kbert.training.callbacks import EpochEvaluator

    scores = iter([0.5, 0.7, 0.6, 0.65, 0.9])

    class Task:
        metric = "accuracy"

        def evaluate(self, *args):
            return {"accuracy": next(scores)}

    class Model:
        stop_training = False
        weights = 0

        def get_weights(self):
            return [self.weights]

        def set_weights(self, w):
            self.weights = w[0]

    model = Model()
    evaluator = EpochEvaluator(Task(), ["data"], None, None, 8, 4, patience=2)
    evaluator.set_model(model)
    for epoch in range(5):
        model.weights = epoch
        logs = {"loss": 1.0}
        evaluator.on_epoch_end(epoch, logs)
        assert logs["val_accuracy"] == evaluator.history[-1]["eval"]["accuracy"]
        if model.stop_training:
            break
    # Epoch 2 was best; epochs 3 and 4 did not beat it, so training stopped after epoch 4.
    assert epoch == 3 and evaluator.best_epoch == 2
    evaluator.restore_best(model)
    assert model.weights == 1


def test_optimizer_is_built_before_the_train_step_is_traced(encoder_dir, sentiment, tmp_path, monkeypatch):
    # Left to Keras, its slots are made inside the first trace of the train step,
    # and a tf.function that makes variables is traced twice (kbert.finetune).
    import keras

    built = []
    fit = keras.Model.fit

    def spy(self, *args, **kwargs):
        built.append(self.optimizer.built)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    finetune("classify", encoder_dir, sentiment["train"], tmp_path / "m", epochs=1, batch_size=64, seq_len=16,
             progress=False)
    assert built == [True]


def autotune_seen_by_fit(monkeypatch):
    """The `autotune.enabled` option of every dataset `keras.Model.fit` gets from now on."""
    import keras

    seen = []
    fit = keras.Model.fit

    def spy(self, x=None, *args, **kwargs):
        seen.append(x.options().autotune.enabled)
        return fit(self, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    return seen


def test_training_data_has_no_autotune_thread(encoder_dir, sentiment, tmp_path, monkeypatch):
    # Deleting an iterator waits for tf.data's tuning thread to wake up: 20-25 s
    # of idle wall time when fit returned (kbert.training.finetune.without_autotune).
    seen = autotune_seen_by_fit(monkeypatch)
    finetune("classify", encoder_dir, sentiment["train"], tmp_path / "m", epochs=1, batch_size=64, seq_len=16,
             progress=False)
    assert seen == [False]
