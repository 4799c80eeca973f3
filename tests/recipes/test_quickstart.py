"""`kbert quickstart` end to end on tiny stand-ins, and its offline failure."""

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from training.test_finetune import encoder_dir, sentiment_rows, write_tsv  # noqa: F401
from kbert.recipes import quickstart as qs


@pytest.fixture(scope="module")
def run(encoder_dir, tmp_path_factory):  # noqa: F811
    """One quickstart on tiny stand-ins of the registry's data and MiniLM (no
    network), run from its own working directory as a user would."""
    from kbert import datasets

    root = tmp_path_factory.mktemp("quickstart")

    def prepare(out_dir, name, seed, progress=None, train_rows=None):
        os.makedirs(out_dir, exist_ok=True)
        counts = {}
        # Fixed seeds: the same rows in every process (str hashes are salted per process).
        for split, n, data_seed in (("train", 160, 0), ("dev", 40, 1), ("test", 40, 2)):
            rows = sentiment_rows(n, data_seed)[:train_rows if split == "train" else None]
            write_tsv(root / f"{split}.tsv", rows)
            os.replace(root / f"{split}.tsv", os.path.join(out_dir, f"{split}.tsv"))
            counts[split] = len(rows)
        progress(f"wrote {out_dir}")
        return counts

    plan = dataclasses.replace(qs.PLANS["fast"], train_rows=120, eval_rows=40, epochs=6, lr=2e-3, seq_len=16,
                               batch_size=16, calibration_rows=40, latency_runs=2)
    lines = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets, "prepare_sentiment", prepare)
        patch.setattr(qs, "_import_minilm", lambda datasets, plan, out, progress: encoder_dir)
        patch.chdir(root)
        summary = qs.quickstart("qs", plan=plan, progress=lines.append)
        text = qs.summary_markdown(summary)
    return {"root": root, "summary": summary, "lines": lines, "text": text}


def test_quickstart_fine_tunes_exports_and_reports(run):
    root, summary, lines, text = run["root"], run["summary"], run["lines"], run["text"]
    assert summary["data"]["train"] == 120  # --fast trims the training split
    assert summary["report"]["passed"]
    names = [r["artifact"] for r in summary["report"]["artifacts"]]
    assert names == ["keras", "savedmodel", "tflite_float32", "tflite_float16", "tflite_dynamic", "onnx",
                     "onnx_dynamic"]
    # The export is named after the task: TF Serving serves it as "sentiment".
    assert summary["export"] == str(root / "qs" / "exports" / "sentiment")
    assert os.path.exists(os.path.join(summary["serving_version"], "saved_model.pb"))
    assert os.path.exists(summary["tflite"])
    assert summary["curve"] == str(root / "qs" / "model" / "training_curve.png")
    with open(summary["curve"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    # Every progress line carries its stage marker; the stages come in order.
    assert lines and all(line.startswith(("[1/4] ", "[2/4] ", "[3/4] ", "[4/4] ")) for line in lines), lines
    starts = [line for line in lines if line.endswith(" ...") and ": " in line]
    assert [line.split(":")[0] for line in starts] == [
        "[1/4] data", "[2/4] import", "[3/4] fine-tune", "[4/4] export + verify"]
    assert "[3/4] fine-tune: 6 epochs on 120 rows ..." in lines
    assert "[4/4] TFLite dynamic ..." in lines and f"[1/4] wrote {root / 'qs' / 'data'}" in lines
    # Per-stage timing, and the export's steps (each with its verification).
    assert set(summary["seconds"]) == {"data", "import", "fine-tune", "export + verify", "total"}
    steps = summary["export_seconds"]
    assert list(steps) == ["load the model + Keras reference", "SavedModel", "TFLite float32", "TFLite float16",
                           "TFLite dynamic", "ONNX", "ONNX dynamic"]
    assert sum(steps.values()) <= summary["seconds"]["export + verify"] + 0.5

    assert "| tflite_dynamic |" in text and "TF Serving" in text and "model sentiment" in text
    assert "training curve:    qs/model/training_curve.png" in text
    assert re.search(r"^took \d+ s: data \d+ s, import \d+ s, fine-tune \d+ s, export \+ verify \d+ s "
                     r"\(load the model \+ Keras reference \d+ s, SavedModel \d+ s, TFLite float32 \d+ s, .*, "
                     r"ONNX \d+ s, ONNX dynamic \d+ s\)$", text, flags=re.M), text


def test_next_steps_name_real_paths_and_run_as_printed(run):
    root, text = run["root"], run["text"]
    printed = text.split("next steps:\n")[1].split("\n\n")[0].splitlines()
    assert [line.split()[:2] for line in printed] == [["kbert", "predict"], ["kbert", "serve-request"],
                                                      ["kbert", "demo"], ["tensorboard", "--logdir"]]
    predict, serve, demo, board = [shlex.split(line) for line in printed]
    assert predict[2] == "qs/model" and (root / predict[2] / "model.keras").is_file()
    assert serve[serve.index("--local") + 1] == "qs/exports/sentiment/serving"
    assert (root / serve[serve.index("--local") + 1]).is_dir()
    assert demo[2] == "qs/exports/sentiment" and (root / demo[2] / "model_card.json").is_file()
    assert (root / board[2]).is_dir()
    for words in (predict, serve):
        result = subprocess.run([sys.executable, "-m", "kbert.cli", *words[1:]], capture_output=True, text=True,
                                cwd=root, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stderr == ""
        if words[1] == "predict":
            label = json.loads(result.stdout.splitlines()[0])["label"]
        else:  # TF Serving's answer, computed in-process
            served = json.loads(result.stdout)["predictions"][0]
            label = served["labels"]
        assert label in ("neg", "pos"), result.stdout
    # The same text through the `ids` signature, tokenized here as the export does: the same logits.
    ids = subprocess.run([sys.executable, "-m", "kbert.cli", *serve[1:], "--signature", "ids", "--export", demo[2]],
                         capture_output=True, text=True, cwd=root, timeout=300)
    assert ids.returncode == 0, ids.stderr[-2000:]
    logits = json.loads(ids.stdout)["predictions"][0]
    logits = logits if isinstance(logits, list) else logits["logits"]
    assert logits == pytest.approx(served["logits"], abs=1e-5)


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
