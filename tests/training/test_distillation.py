import json
import os

import numpy as np
import pytest

from conftest import random_inputs
from kbert.config import BertConfig
from kbert.errors import ConfigError, DataError
from kbert.model_dir import load_model, read_model_dir, save_model
from kbert.training.distillation import distill
from kbert.training.students import make_student, teacher_layers
from kbert.training.finetune import evaluate, finetune, predict

WORDS = "good great fine nice bad awful poor dull the movie film plot was is very and but".split()
POSITIVE, NEGATIVE = WORDS[:4], WORDS[4:8]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?", *WORDS]
# A wide initializer: a 2-layer toy learns the task in a few epochs whatever the seed (0.02 often stalls at 0.5).
TEACHER = dict(vocab_size=len(VOCAB), hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
               max_position_embeddings=64, initializer_range=0.2)
STUDENT = dict(TEACHER, hidden_size=16, intermediate_size=32)


def sentiment_rows(n, seed):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        filler = list(rng.choice(WORDS[8:], size=rng.integers(2, 6)))
        filler.insert(rng.integers(len(filler) + 1), rng.choice(POSITIVE if i % 2 else NEGATIVE))
        rows.append((" ".join(filler), "pos" if i % 2 else "neg"))
    return rows


def write_tsv(path, rows):
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows), encoding="utf-8")
    return str(path)


def write_conll(path, n, seed):
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        for word in rng.choice(WORDS + [",", "!"], size=rng.integers(3, 9)):
            kind = "POS" if word in POSITIVE else "NEG" if word in NEGATIVE else None
            lines.append(f"{word} {'B-' + kind if kind else 'O'}")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def write_squad(path, n, seed, answers=True):
    rng = np.random.default_rng(seed)
    paragraphs = []
    for i in range(n):
        words = list(rng.choice(WORDS[8:], size=rng.integers(4, 10)))
        answer = str(rng.choice(POSITIVE))
        words.insert(int(rng.integers(len(words) + 1)), answer)
        context = " ".join(words)
        qa = {"id": f"q{seed}-{i}", "question": "the good ?"}
        if answers:
            qa["answers"] = [{"text": answer, "answer_start": context.index(answer)}]
        paragraphs.append({"context": context, "qas": [qa]})
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}),
                    encoding="utf-8")
    return str(path)


def logits(model_dir, inputs):
    out = load_model(model_dir).predict(inputs, verbose=0)
    return {k: np.asarray(v, np.float64) for k, v in out.items()} if isinstance(out, dict) else np.asarray(out)


def kl(teacher, student):
    """Mean KL(softmax(teacher) || softmax(student)) over rows, computed here."""
    def log_softmax(x):
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    p = log_softmax(teacher)
    return float(np.mean(np.sum(np.exp(p) * (p - log_softmax(student)), -1)))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    import keras

    from kbert.models import BertEncoder

    keras.utils.set_random_seed(1)
    directory = tmp_path_factory.mktemp("distill")
    save_model(BertEncoder(BertConfig(**TEACHER)), directory / "encoder", vocab=VOCAB, seq_len=16)
    unlabeled = directory / "unlabeled.txt"
    unlabeled.write_text("".join(t + "\n" for t, _ in sentiment_rows(192, 7)), encoding="utf-8")
    return {"dir": directory, "encoder": str(directory / "encoder"), "unlabeled": str(unlabeled),
            "train": write_tsv(directory / "train.tsv", sentiment_rows(192, 0)),
            "dev": write_tsv(directory / "dev.tsv", sentiment_rows(64, 1))}


@pytest.fixture(scope="module")
def teacher(data):
    out = data["dir"] / "teacher"
    finetune("classify", data["encoder"], data["train"], out, eval=data["dev"], epochs=5, batch_size=16, lr=2e-3,
             seq_len=16, progress=False)
    return str(out)


def test_distillation_lowers_the_students_kl_to_the_teacher(data, teacher, tmp_path):
    from kbert.models import BertClassifier, BertEncoder

    start = tmp_path / "start"  # a random student with the teacher's vocab, saved so it can be measured
    save_model(BertClassifier(BertEncoder(BertConfig(**STUDENT)), 2), start, vocab=VOCAB, labels=["neg", "pos"],
               seq_len=16)
    from kbert.tasks import get_task

    task = get_task("classify")
    held_out = task.features(task.read(data["dev"]), read_model_dir(teacher).tokenizer(), ["neg", "pos"], 16)
    inputs = {k: held_out[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    reference = logits(teacher, inputs)
    before = kl(reference, logits(start, inputs))

    result = distill(teacher, data["train"], tmp_path / "student", str(start), unlabeled=[data["unlabeled"]],
                     eval=data["dev"], epochs=10, batch_size=16, lr=3e-3, progress=False)
    after = kl(reference, logits(tmp_path / "student", inputs))
    assert after < 0.25 * before, (before, after)
    metrics = read_model_dir(tmp_path / "student").metrics
    assert metrics["kl_before"] == pytest.approx(before, rel=1e-3)
    assert metrics["kl"] == pytest.approx(after, rel=1e-3)
    assert metrics["teacher"]["eval"]["accuracy"] >= 0.9
    assert metrics["eval"]["accuracy"] >= 0.9 and metrics["teacher_kept"] >= 0.9
    assert metrics["train"]["unlabeled"][0]["examples"] == 192 and metrics["train"]["examples"] == 192
    history = metrics["history"]
    assert len(history) == 10 and {"soft_loss", "hard_loss"} <= set(history[0])
    assert [h["eval"]["kl"] for h in history][metrics["best_epoch"] - 1] == metrics["kl"]
    assert result["model_dir"].labels == ["neg", "pos"]
    # An ordinary model directory: evaluate and predict work unchanged.
    assert evaluate(tmp_path / "student", data["dev"])["accuracy"] == metrics["eval"]["accuracy"]
    assert predict(tmp_path / "student", ["a very good film"])[0]["label"] == "pos"
    for name in ("training_curve.png", "logs"):
        assert os.path.exists(tmp_path / "student" / name)
    assert not os.path.exists(str(tmp_path / "student") + ".work")


def test_student_layers_copies_the_right_teacher_layers(tmp_path):
    from kbert.models import BertClassifier, BertEncoder
    from kbert.tasks import model_dir_task

    deep = tmp_path / "deep"  # a 4-layer classifier (untrained: copying needs no training)
    save_model(BertClassifier(BertEncoder(BertConfig(**dict(TEACHER, num_layers=4))), 2), deep, vocab=VOCAB,
               labels=["neg", "pos"], seq_len=16)
    info, model = read_model_dir(deep), load_model(deep)
    assert teacher_layers(2, 4) == [1, 3] and teacher_layers(3, 6) == [1, 3, 5] and teacher_layers("0,2", 4) == [0, 2]
    student, described, taken = make_student(model, info, None, "0,2", model_dir_task(info), ["neg", "pos"], 0.1, 16)
    assert taken == [0, 2] and described == "teacher layers [0, 2]"
    assert student.encoder.config.num_layers == 2 and student.encoder.config.hidden_size == 32
    for mine, theirs in [(student.encoder.transformer_layers[0], model.encoder.transformer_layers[0]),
                         (student.encoder.transformer_layers[1], model.encoder.transformer_layers[2]),
                         (student.encoder.embeddings, model.encoder.embeddings),
                         (student.encoder.pooler, model.encoder.pooler), (student.head, model.head)]:
        for a, b in zip(mine.get_weights(), theirs.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    # Layers 1 and 3 were not taken.
    for skipped in (1, 3):
        assert not np.array_equal(student.encoder.transformer_layers[1].get_weights()[0],
                                  model.encoder.transformer_layers[skipped].get_weights()[0])
    # The default count: the top layer of each group.
    student, _, taken = make_student(model, info, None, 2, model_dir_task(info), ["neg", "pos"], 0.1, 16)
    assert taken == [1, 3]
    np.testing.assert_array_equal(student.encoder.transformer_layers[1].get_weights()[0],
                                  model.encoder.transformer_layers[3].get_weights()[0])
    with pytest.raises(ConfigError, match="hidden_size to be the teacher's"):
        make_student(model, info, "tiny", 2, model_dir_task(info), ["neg", "pos"], 0.1, 16)
    with pytest.raises(ConfigError, match="outside 1..4"):
        teacher_layers(5, 4)


def test_intermediate_losses_and_the_layer_by_layer_forward(teacher):
    import keras

    from kbert.models import BertClassifier, BertEncoder
    from kbert.training.distiller import Distiller, forward, objective

    model = load_model(teacher)
    x = random_inputs(model.encoder.config, batch=3, seq_len=12)
    out, hidden, scores = forward(model, x, False, {1})
    np.testing.assert_allclose(out, model(x), atol=1e-5)
    assert len(hidden) == 3 and sorted(scores) == [1] and tuple(scores[1].shape) == (3, 2, 12, 12)
    keras.utils.set_random_seed(0)
    student = BertClassifier(BertEncoder(BertConfig(**STUDENT)), 2)
    distiller = Distiller(model, student, objective("classify", 2.0, ["neg", "pos"]), hidden_weight=1.0,
                          attention_weight=1.0, mapping=[0, 1])
    assert distiller.projection is not None  # widths 16 -> 32
    parts = distiller.losses_of(x, np.array([0, 1, -1]))
    assert set(parts) == {"soft_loss", "hard_loss", "hidden_loss", "attention_loss"}
    assert all(np.isfinite(float(v)) and float(v) > 0 for v in parts.values())
    # The teacher against itself: every distillation loss is zero.
    twin = Distiller(model, load_model(teacher), objective("classify", 2.0, ["neg", "pos"]), hidden_weight=1.0,
                     attention_weight=1.0, mapping=[0, 1])
    parts = twin.losses_of(x, np.array([0, 1, -1]), training=False)
    for name in ("soft_loss", "hidden_loss", "attention_loss"):
        assert abs(float(parts[name])) < 1e-5, (name, float(parts[name]))


def test_objectives_temperature_and_unlabelled_rows():
    from kbert.training.distiller import objective

    teacher = np.array([[2.0, 0.0], [0.0, 1.0]], np.float32)
    student = np.array([[0.0, 0.0], [0.0, 0.0]], np.float32)
    goal = objective("classify", 2.0, ["a", "b"])
    p = np.exp(teacher / 2) / np.exp(teacher / 2).sum(-1, keepdims=True)
    expected = 4.0 * np.mean(np.sum(p * np.log(p / 0.5), -1))  # T^2 * KL at T = 2
    assert float(goal.soft(teacher, student, None)) == pytest.approx(expected, rel=1e-5)
    # The unlabelled row (-1) adds nothing to the hard loss.
    assert float(goal.hard(np.array([1, -1]), student)) == pytest.approx(np.log(2), rel=1e-5)
    regression = objective("classify", 2.0, None)
    assert float(regression.hard(np.array([1.0, np.nan], np.float32), np.array([[0.0], [5.0]], np.float32))) == 1.0
    qa = objective("qa", 1.0, None)
    mask = np.array([[1, 1, 0]])
    same = {"start_logits": np.array([[1.0, 2.0, 9.0]], np.float32), "end_logits": np.array([[0.0, 1.0, -9.0]], np.float32)}
    other = {"start_logits": np.array([[1.0, 2.0, -9.0]], np.float32), "end_logits": np.array([[0.0, 1.0, 9.0]], np.float32)}
    # Padded positions are not part of the distributions.
    assert float(qa.soft(same, other, {"padding_mask": mask})) == pytest.approx(0.0, abs=1e-6)
    assert qa.measure(same, other, {"padding_mask": mask}) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("task", ["ner", "qa"])
def test_ner_and_qa_distill(data, task, tmp_path):
    directory = tmp_path
    if task == "ner":
        train, dev = write_conll(directory / "train.txt", 120, 0), write_conll(directory / "dev.txt", 30, 1)
        unlabeled = directory / "more.txt"
        unlabeled.write_text("the good film , very dull plot !\n\nawful but nice\n", encoding="utf-8")
        options, seq_len = {}, 16
    else:
        train, dev = write_squad(directory / "train.json", 120, 0), write_squad(directory / "dev.json", 30, 1)
        unlabeled = write_squad(directory / "more.json", 40, 2, answers=False)
        options, seq_len = {"doc_stride": 8}, 24
    finetune(task, data["encoder"], train, directory / "teacher", eval=dev, epochs=2, batch_size=16, lr=3e-3,
             seq_len=seq_len, progress=False, **options)
    result = distill(directory / "teacher", train, directory / "student", student_layers=1, unlabeled=[unlabeled],
                     eval=dev, epochs=1, batch_size=16, lr=1e-3, progress=False, hidden_weight=1.0,
                     attention_weight=1.0)
    metrics = result["metrics"]
    assert metrics["student"]["teacher_layers"] == [1] and metrics["student"]["layers"] == 1
    assert metrics["train"]["unlabeled"][0]["examples"] == (2 if task == "ner" else 40)
    assert np.isfinite(metrics["kl"]) and np.isfinite(metrics["kl_before"])
    assert "f1" in metrics["teacher"]["eval"] and "attention_loss" in metrics["history"][0]
    info = read_model_dir(directory / "student")
    assert info.task == task and info.task_options == read_model_dir(directory / "teacher").task_options
    assert evaluate(directory / "student", dev)["f1"] == pytest.approx(metrics["eval"]["f1"])


def test_distilled_student_exports(data, teacher, tmp_path):
    from kbert.export import export

    distill(teacher, data["train"], tmp_path / "student", student_layers=1, eval=data["dev"], epochs=1,
            batch_size=32, progress=False)
    report = export(tmp_path / "student", tmp_path / "export", formats=["tflite"], quantize=["float32"],
                    eval_size=16, latency_runs=1, progress=lambda m: None)
    assert report["passed"] and [r["artifact"] for r in report["artifacts"]] == ["keras", "tflite_float32"]
    assert os.path.isfile(tmp_path / "export" / "tflite" / "model_float32.tflite")
    # The report shows the teacher beside the student, on the same rows.
    teacher_row = report["teacher"]
    assert teacher_row["model_dir"] == str(teacher)
    assert 0.0 <= teacher_row["agreement"] <= 1.0 and teacher_row["metric"] is not None
    assert teacher_row["student_parameters"] < teacher_row["parameters"]
    with open(tmp_path / "export" / "report.md", encoding="utf-8") as f:
        text = f.read()
    assert "| teacher (Keras) |" in text and f"Distilled from `{teacher}`" in text
    # A plain fine-tuned model has no teacher row.
    plain = export(teacher, tmp_path / "export2", formats=["tflite"], quantize=["float32"], eval=data["dev"],
                   eval_size=16, latency_runs=1, progress=lambda m: None)
    assert "teacher" not in plain


def test_bad_students_are_one_line_errors(data, teacher, tmp_path):
    from kbert.models import BertEncoder

    other = tmp_path / "other"
    save_model(BertEncoder(BertConfig(**dict(TEACHER, vocab_size=len(VOCAB) + 1))), other, vocab=VOCAB + ["x"],
               seq_len=16)
    with pytest.raises(ConfigError, match=r"other/vocab.txt: differs from the teacher's vocab.txt \(27 vs 26 tokens"):
        distill(teacher, data["train"], tmp_path / "out", str(other))
    with pytest.raises(ConfigError, match="neither a preset"):
        distill(teacher, data["train"], tmp_path / "out", "huge")
    with pytest.raises(ConfigError, match="give a preset"):
        distill(teacher, data["train"], tmp_path / "out")
    with pytest.raises(ConfigError, match="distillation needs a fine-tuned"):
        distill(data["encoder"], data["train"], tmp_path / "out", "tiny")
    with pytest.raises(ConfigError, match="head count"):
        distill(teacher, data["train"], tmp_path / "out", BertConfig(**dict(STUDENT, num_heads=4)),
                attention_weight=1.0)
    bad = tmp_path / "pairs.tsv"
    bad.write_text("sentence1\tsentence2\na\tb\n", encoding="utf-8")
    with pytest.raises(DataError, match="has a second-text column, unlike the training file"):
        distill(teacher, data["train"], tmp_path / "out", "tiny", unlabeled=[str(bad)])
    assert not (tmp_path / "out").exists()


def test_distillation_data_has_no_autotune_thread(data, teacher, tmp_path, monkeypatch):
    # As for finetune: deleting the iterator waits for tf.data's sleeping tuning thread.
    from training.test_finetune import autotune_seen_by_fit

    seen = autotune_seen_by_fit(monkeypatch)
    distill(teacher, data["train"], tmp_path / "student", student_layers=1, epochs=1, progress=False)
    assert seen == [False]
