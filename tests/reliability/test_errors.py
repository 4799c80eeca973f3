"""Every user-caused failure is one `Error:` line on stderr and exit code 2,
and input that would silently give a wrong model is refused: each case driven
through the `kbert` command line (or the public API) as a user would."""

import errno
import json
import os

import pytest

from .helpers import FAST, VOCAB, cli, encoder_dir, kbert, one_error_line, sentiment_tsv


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny encoder dir and an (untrained) two-label classifier dir."""
    from kbert.model_dir import load_model, read_model_dir, save_model
    from kbert.models import BertClassifier

    root = tmp_path_factory.mktemp("models")
    encoder = encoder_dir(root / "encoder")
    classifier = root / "classifier"
    save_model(BertClassifier(load_model(encoder), 2), classifier, vocab=read_model_dir(encoder).vocab,
               labels=["neg", "pos"], seq_len=16)
    return {"encoder": encoder, "classifier": str(classifier)}


def squad(path, answers):
    """A SQuAD v1.1 file: one context, a question per (text, answer_start)."""
    context = "the movie was good and the plot was dull"
    qas = [{"id": f"q{i}", "question": "was the movie good", "answers": [{"text": t, "answer_start": s}]}
           for i, (t, s) in enumerate(answers)]
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": qas}]}]}), encoding="utf-8")
    return path


def test_pretraining_a_small_corpus_with_the_default_holdout(models, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(["the movie was good .\nthe plot was fine .\nthe film is great ."] * 6) + "\n")
    vocab = os.path.join(models["encoder"], "vocab.txt")
    code, stdout, stderr = kbert("pretrain", "--corpus", corpus, "--vocab", vocab, "--out", tmp_path / "pt",
                                 "--steps", "2", "--batch-size", "2", "--seq-len", "16", "--max-predictions", "2")
    assert code == 2
    one_error_line(stderr, "corpus.txt", "no held-out documents", "holdout 0.02")
    assert sorted(os.listdir(tmp_path)) == ["corpus.txt"]


def test_squad_without_any_located_answer(models, tmp_path):
    train = squad(tmp_path / "squad.json", [("zebra", 0)] * 4)
    result = cli("finetune", "qa", "--init", models["encoder"], "--train", train, "--out", tmp_path / "qa",
                 "--epochs", "1", "--batch-size", "4", "--seq-len", "32")
    assert result.exit_code == 2
    one_error_line(result.stderr_lines, "squad.json", "none of the 4 training questions", "'q0'", "'zebra'")
    assert not (tmp_path / "qa").exists()


def test_squad_answers_not_located_are_counted_and_reported(models, tmp_path):
    train = squad(tmp_path / "squad.json", [("good", 14), ("zebra", 0), ("dull", 36), ("lion", 3)])
    result = cli("finetune", "qa", "--init", models["encoder"], "--train", train, "--out", tmp_path / "qa",
                 "--epochs", "1", "--batch-size", "4", "--seq-len", "32")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr_lines if "left out" in line]
    assert len(notes) == 1 and "2 of 4 training questions" in notes[0] and "'q1'" in notes[0]
    assert "squad.json" in notes[0]
    metrics = json.loads((tmp_path / "qa" / "metrics.json").read_text())
    assert metrics["train"]["unlocated_answers"] == 2 and metrics["train"]["unlocated_ids"] == ["q1", "q3"]


def test_conll_line_missing_its_tag_column(models, tmp_path):
    lines = ["the DT B-NP O", "movie NN I-NP B-MISC", "was VBD B-VP O", "good JJ B-ADJP O", ""] * 4
    lines[6] = "movie NN I-NP"  # the tag column is missing: the chunk tag would be read as the tag
    data = tmp_path / "ner.txt"
    data.write_text("\n".join(lines) + "\n")
    result = cli("finetune", "ner", "--init", models["encoder"], "--train", data, "--out", tmp_path / "ner", *FAST)
    assert result.exit_code == 2
    one_error_line(result.stderr_lines, "ner.txt:7: 3 columns, but line 1 has 4")
    assert not (tmp_path / "ner").exists()


@pytest.mark.parametrize("labels", [["neg"], ["neg", "pos", "mid"]])
def test_config_labels_must_match_the_model_outputs(models, tmp_path, labels):
    import shutil

    model = shutil.copytree(models["classifier"], tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "labels": labels}))
    result = cli("predict", model, "the movie was good")
    assert result.exit_code == 2 and result.stdout == ""
    one_error_line(result.stderr_lines, "config.json", f"field 'labels' has {len(labels)}", "2 outputs")


def test_json_with_a_byte_order_mark_is_read_like_text_with_one(models, tmp_path):
    import shutil

    from kbert.io import read_json

    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"a": 1}).encode())
    assert read_json(path) == {"a": 1}
    model = shutil.copytree(models["classifier"], tmp_path / "model")  # a config.json saved by a Windows editor
    (model / "config.json").write_bytes(b"\xef\xbb\xbf" + (model / "config.json").read_bytes())
    data = tmp_path / "dev.jsonl"
    data.write_bytes(b"\xef\xbb\xbf" + b"".join(json.dumps({"text": f"the film was {w}", "label": l}).encode()
                                                 + b"\n" for w, l in [("good", "pos"), ("bad", "neg")]))
    result = cli("evaluate", model, "--data", data)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["examples"] == 2


@pytest.mark.parametrize("name, content, line", [
    ("labels.jsonl", "".join(json.dumps({"text": "the movie was good", "label": label}) + "\n"
                             for label in ["pos", "neg", "ne\ng", "pos"]), 3),
    ("labels.csv", 'sentence,label\nthe movie was good,pos\nthe plot was dull,"ne\ng"\n', 4),  # where the row ends
])
def test_a_label_with_a_line_break_is_refused(models, tmp_path, name, content, line):
    data = tmp_path / name
    data.write_text(content, encoding="utf-8")
    result = cli("finetune", "classify", "--init", models["encoder"], "--train", data, "--out", tmp_path / "m",
                 *FAST)
    assert result.exit_code == 2
    one_error_line(result.stderr_lines, f"{name}:{line}:", "line break")
    assert not (tmp_path / "m").exists()


def test_a_failed_tflite_conversion_is_one_line_naming_its_log(tmp_path, capfd, monkeypatch):
    from kbert.export.tflite import convert

    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"not a SavedModel")
    monkeypatch.setenv("KBERT_VERBOSE", "1")  # kbert --verbose: the whole text on stderr too
    capfd.readouterr()
    with pytest.raises(RuntimeError) as failure:
        convert(str(saved), str(tmp_path / "m.tflite"), "float32")
    message = str(failure.value)
    assert len(message.splitlines()) == 1 and message.startswith("float32: TFLite conversion failed")
    log = message.rsplit("converter output: ", 1)[1].rstrip(")")
    with open(log, encoding="utf-8") as f:
        assert "Traceback" in f.read()  # the whole text is kept there
    os.remove(log)
    assert "Traceback" in capfd.readouterr().err
    assert not (tmp_path / "m.tflite").exists()


def test_os_errors_the_user_can_fix_are_one_line_others_are_bugs(monkeypatch, tmp_path):
    import kbert.cli.datasets

    def fail(number):
        def prepare(*args, **kwargs):
            raise OSError(number, os.strerror(number), "/data/rt")
        return prepare

    monkeypatch.setattr(kbert.cli.datasets, "prepare_sentiment", fail(errno.EACCES))
    result = cli("datasets", "prepare", "--out", tmp_path / "rt")
    assert result.exit_code == 2
    one_error_line(result.stderr_lines, "/data/rt: Permission denied")
    monkeypatch.setattr(kbert.cli.datasets, "prepare_sentiment", fail(errno.ENOENT))
    result = cli("datasets", "prepare", "--out", tmp_path / "rt")
    assert result.exit_code == 1 and isinstance(result.exception, FileNotFoundError)  # a bug: traceback


def test_tensorflow_write_errors_count_as_the_users(tmp_path):
    import tensorflow as tf

    from kbert.outputs import is_user_os_error

    denied = tf.errors.PermissionDeniedError(None, None, f"{tmp_path}/x.work; Read-only file system")
    assert is_user_os_error(denied)
    assert not is_user_os_error(tf.errors.InvalidArgumentError(None, None, "buffer_size must be greater than zero"))
