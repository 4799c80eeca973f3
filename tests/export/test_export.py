"""Export to SavedModel / TFLite / ONNX with verification, on tiny models."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from training.test_finetune import encoder_dir, sentiment_rows, write_conll, write_squad, write_tsv  # noqa: F401
from kbert.export import export
from kbert.export.run import ExportError
from kbert.training.finetune import finetune, predict


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, encoder_dir):  # noqa: F811
    directory = tmp_path_factory.mktemp("cls")
    train = write_tsv(directory / "train.tsv", sentiment_rows(256, 0))
    dev = write_tsv(directory / "dev.tsv", sentiment_rows(64, 1))
    finetune("classify", encoder_dir, train, directory / "model", eval=dev, epochs=8, batch_size=16, lr=2e-3,
             seq_len=16, progress=False)
    return str(directory / "model"), dev


def test_export_all_formats_verified(classifier, tmp_path):
    model_dir, dev = classifier
    out = tmp_path / "exports" / "sst"
    report = export(model_dir, out, latency_runs=3, progress=lambda m: None)
    assert report["passed"], report["failures"]
    names = [r["artifact"] for r in report["artifacts"]]
    # The integer-only modes are opt-in (tests/export/test_tflite.py).
    assert names == ["keras", "savedmodel", "tflite_float32", "tflite_float16", "tflite_dynamic",
                     "onnx", "onnx_dynamic"]
    rows = {r["artifact"]: r for r in report["artifacts"]}
    assert rows["keras"]["metric"] >= 90
    for name in ("savedmodel", "tflite_float32", "onnx"):
        assert rows[name]["agreement"] == 1.0 and rows[name]["max_abs_diff"] < 1e-4, rows[name]
    assert rows["savedmodel"]["text_agreement"] == 1.0  # raw strings in, same answers
    assert rows["tflite_float16"]["bytes"] < rows["tflite_float32"]["bytes"]
    for path in ("serving/1/saved_model.pb", "tflite/model_dynamic.tflite", "onnx/model.onnx", "vocab.txt",
                 "labels.txt", "model_card.json", "report.json", "report.md"):
        assert (out / path).exists(), path
    assert (out / "labels.txt").read_text().split() == ["neg", "pos"]
    assert "| tflite_dynamic |" in (out / "report.md").read_text()
    assert not (out / "tflite" / "model_int8.tflite").exists()
    # A second export adds version 2 and keeps version 1.
    export(model_dir, out, formats=["savedmodel"], latency_runs=1, progress=lambda m: None)
    assert sorted(os.listdir(out / "serving")) == ["1", "2"]


def test_savedmodel_serves_raw_strings_without_kbert(classifier, tmp_path):
    model_dir, _ = classifier
    out = tmp_path / "sm"
    export(model_dir, out, formats=["savedmodel"], latency_runs=1, progress=lambda m: None)
    script = r"""
import sys, tensorflow as tf, tensorflow_text
m = tf.saved_model.load(sys.argv[1])
f = m.signatures["serving_default"]
texts = ["the film was very good", "", "x" * 100000, "\xff\xfe bad \U0001F600 movie".encode("latin-1", "replace"),
         "awful plot"] + ["good"] * 507
out = f(text=tf.constant(texts, tf.string))
labels = [x.decode() for x in out["labels"].numpy()]
assert "kbert" not in sys.modules
print(labels[0], labels[4], out["probabilities"].shape, len(labels))
"""
    result = subprocess.run([sys.executable, "-c", script, str(out / "serving" / "1")], capture_output=True,
                            text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["pos", "neg", "(512,", "2)", "512"]


def test_failed_check_leaves_nothing(classifier, tmp_path):
    model_dir, _ = classifier
    out = tmp_path / "exports" / "bad"
    with pytest.raises(ExportError, match="onnx: label agreement"):
        export(model_dir, out, formats=["onnx"], thresholds={"onnx": 1.01}, latency_runs=1,
               progress=lambda m: None)
    assert not out.exists() and os.listdir(tmp_path / "exports") == []


def test_cli_export_bad_input_is_one_line(classifier, tmp_path):
    model_dir, _ = classifier
    result = subprocess.run(
        [sys.executable, "-m", "kbert.cli", "export", model_dir, "--format", "onnx",
         "--eval", str(tmp_path / "missing.tsv"), "--out", str(tmp_path / "e")],
        capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"Error: {tmp_path / 'missing.tsv'}: file not found"]
    assert not (tmp_path / "e").exists()


def test_cli_export_bad_calibration_file_is_one_line(classifier, tmp_path):
    # A calibration file the user names is read before the export starts, never skipped for the eval rows.
    model_dir, dev = classifier
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(b"sentence\tlabel\n\x80\xff film\t1\n")
    for calibration, message in ((tmp_path / "missing.tsv", f"Error: {tmp_path / 'missing.tsv'}: file not found"),
                                 (bad, f"Error: {bad}:2: not valid UTF-8")):
        result = subprocess.run(
            [sys.executable, "-m", "kbert.cli", "export", model_dir, "--format", "tflite", "--quantize", "int8",
             "--calibration", str(calibration), "--eval", dev, "--out", str(tmp_path / "e")],
            capture_output=True, text=True, cwd=REPO)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(message), lines
        assert "TFLite" not in result.stdout  # refused before any conversion
        assert not (tmp_path / "e").exists()


def test_ner_and_qa_savedmodel_and_float16(encoder_dir, tmp_path):  # noqa: F811
    train, dev = write_conll(tmp_path / "train.txt", 200, 0), write_conll(tmp_path / "dev.txt", 40, 1)
    finetune("ner", encoder_dir, train, tmp_path / "ner", eval=dev, epochs=6, batch_size=16, lr=3e-3,
             seq_len=16, progress=False)
    report = export(tmp_path / "ner", tmp_path / "ner_export", formats=["savedmodel", "tflite"],
                    quantize=["float16"], latency_runs=1, progress=lambda m: None)
    assert report["passed"] and [r["artifact"] for r in report["artifacts"]] == ["keras", "savedmodel",
                                                                                 "tflite_float16"]
    import tensorflow as tf

    serve = tf.saved_model.load(str(tmp_path / "ner_export" / "serving" / "1")).signatures["serving_default"]
    out = serve(text=tf.constant(["The movie, very Good!"]))
    tags = [t.decode() for t in out["tags"].numpy()[0]]
    start, end = out["token_start"].numpy()[0], out["token_end"].numpy()[0]
    good = [i for i in range(len(tags)) if start[i] == 16]
    assert good and tags[good[0]] == "B-POS" and end[good[0]] == 20 and start[0] == -1

    train, dev = write_squad(tmp_path / "train.json", 200, 0), write_squad(tmp_path / "dev.json", 40, 1)
    finetune("qa", encoder_dir, train, tmp_path / "qa", eval=dev, epochs=6, batch_size=16, lr=3e-3,
             seq_len=24, doc_stride=8, progress=False)
    report = export(tmp_path / "qa", tmp_path / "qa_export", formats=["savedmodel", "tflite"],
                    quantize=["float16"], latency_runs=1, progress=lambda m: None)
    assert report["passed"], report["failures"]
    # The served answers are kbert.predict's on every verification example.
    assert {r["artifact"]: r for r in report["artifacts"]}["savedmodel"]["answer_agreement"] == 1.0
    serve = tf.saved_model.load(str(tmp_path / "qa_export" / "serving" / "1")).signatures["serving_default"]
    context = "the film was nice and the plot"
    out = serve(text=tf.constant(["the good ?"]), text_pair=tf.constant([context]))
    s, e = int(out["answer_start"][0]), int(out["answer_end"][0])
    assert out["answer"].numpy()[0].decode() == "nice" and context[s:e] == "nice"
    # A context many windows long is answered from all of it, as kbert.predict answers.
    long_context = " ".join(["the film was and the plot"] * 5) + " the plot was nice and the film"
    out = serve(text=tf.constant(["the good ?"]), text_pair=tf.constant([long_context]))
    [expected] = predict(tmp_path / "qa", ["the good ?"], [long_context])
    assert int(out["windows"][0]) > 3 and expected["answer"] == "nice"
    assert (out["answer"].numpy()[0].decode(), int(out["answer_start"][0]), int(out["answer_end"][0])) == (
        expected["answer"], expected["start"], expected["end"])
    card = json.loads((tmp_path / "qa_export" / "model_card.json").read_text())
    assert card["task"] == "qa" and card["tflite_outputs"] == ["end_logits", "start_logits"]

