"""`kbert quickstart` end to end on tiny stand-ins, and its offline failure."""

import dataclasses
import os
import subprocess
import sys

import pytest

from test_finetune import encoder_dir, sentiment_rows, write_tsv  # noqa: F401
from kbert.recipes import quickstart as qs


@pytest.fixture
def tiny_sources(monkeypatch, encoder_dir, tmp_path):  # noqa: F811
    """The registry's data and MiniLM replaced by local tiny ones (no network)."""
    from kbert import datasets

    def prepare(out_dir, name, seed, progress=None):
        os.makedirs(out_dir)
        for split, n in (("train", 160), ("dev", 40), ("test", 40)):
            write_tsv(tmp_path / f"{split}.tsv", sentiment_rows(n, hash(split) % 100))
            os.replace(tmp_path / f"{split}.tsv", os.path.join(out_dir, f"{split}.tsv"))
        return {"train": 160, "dev": 40, "test": 40}

    monkeypatch.setattr(datasets, "prepare_sentiment", prepare)
    monkeypatch.setattr(qs, "_import_minilm", lambda datasets, plan, out, progress: encoder_dir)
    return dataclasses.replace(qs.PLANS["fast"], train_rows=120, eval_rows=40, epochs=6, lr=2e-3, seq_len=16,
                               batch_size=16, calibration_rows=40, latency_runs=2)


def test_quickstart_fine_tunes_exports_and_reports(tiny_sources, tmp_path):
    lines = []
    summary = qs.quickstart(tmp_path / "qs", plan=tiny_sources, progress=lines.append)
    assert summary["data"]["train"] == 120  # --fast trims the training split
    assert summary["report"]["passed"]
    names = [r["artifact"] for r in summary["report"]["artifacts"]]
    assert names == ["keras", "savedmodel", "tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8",
                     "onnx"]
    assert os.path.exists(os.path.join(summary["serving_version"], "saved_model.pb"))
    assert os.path.exists(summary["tflite"])
    text = qs.summary_markdown(summary)
    assert "| tflite_int8 |" in text and "kbert demo" in text and "TF Serving" in text
    assert [line.split(" ", 1)[1] for line in lines if line.startswith("[")][:4] == [
        "data: rt_polarity ...", "import all-MiniLM-L6-v2 ...", "fine-tune ...", "export + verify ..."]


def test_quickstart_offline_with_empty_cache_is_one_line(tmp_path):
    env = dict(os.environ, KBERT_CACHE=str(tmp_path / "cache"), PIP_INDEX_URL="http://127.0.0.1:9/simple",
               PIP_NO_CACHE_DIR="1", PIP_FIND_LINKS="", PIP_RETRIES="0", PIP_TIMEOUT="2")
    result = subprocess.run([sys.executable, "-m", "kbert.cli", "quickstart", "--fast", "--out",
                             str(tmp_path / "qs")], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "kbert datasets fetch" in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "qs" / "model")
