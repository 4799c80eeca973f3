"""`kbert distill`: a model directory out, bad input as one line."""

import json
import subprocess
import sys

import pytest

from conftest import REPO
from kbert.config import BertConfig
from kbert.model_dir import read_model_dir, save_model

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"good bad the film plot was very dull nice".split()]
CONFIG = dict(vocab_size=len(VOCAB), hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
              max_position_embeddings=32)


def kbert(*args):
    return subprocess.run([sys.executable, "-m", "kbert.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=600)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A (random-weight) 2-layer classifier teacher and small data files."""
    from kbert.models import BertClassifier, BertEncoder

    directory = tmp_path_factory.mktemp("distill_cli")
    save_model(BertClassifier(BertEncoder(BertConfig(**CONFIG)), 2), directory / "teacher", vocab=VOCAB,
               labels=["neg", "pos"], seq_len=12)
    rows = [("the film was very good", "pos"), ("dull plot", "neg"), ("nice film", "pos"), ("bad", "neg")] * 8
    train = directory / "train.tsv"
    train.write_text("sentence\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows), encoding="utf-8")
    more = directory / "more.txt"
    more.write_text("a good plot\nthe film was dull\n", encoding="utf-8")
    return {"dir": directory, "teacher": directory / "teacher", "train": train, "more": more}


def test_distill_writes_a_model_directory(files):
    out = files["dir"] / "student"
    proc = kbert("distill", "--teacher", files["teacher"], "--student-layers", "1", "--train", files["train"],
                 "--unlabeled", files["more"], "--eval", files["train"], "--out", out, "--epochs", "1",
                 "--batch-size", "16", "--temperature", "3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    # After the epochs' progress: the JSON summary, then the path written.
    shown = json.loads(proc.stdout[proc.stdout.rindex("\n{\n"):proc.stdout.rindex("}") + 1])
    assert proc.stdout.splitlines()[-1] == f"wrote {out}"
    assert {"eval", "kl", "kl_before", "teacher_eval"} <= set(shown)
    info = read_model_dir(out)
    assert info.task == "classify" and info.labels == ["neg", "pos"] and info.config.num_layers == 1
    metrics = info.metrics
    assert metrics["student"]["teacher_layers"] == [1] and metrics["distillation"]["temperature"] == 3.0
    assert metrics["train"]["unlabeled"] == [{"file": str(files["more"]), "examples": 2, "windows": 2}]


def test_distill_bad_student_is_one_line(files, tmp_path):
    from kbert.models import BertEncoder

    other = tmp_path / "other"
    save_model(BertEncoder(BertConfig(**dict(CONFIG, vocab_size=len(VOCAB) - 1))), other, vocab=VOCAB[:-1],
               seq_len=12)
    proc = kbert("distill", "--teacher", files["teacher"], "--student", other, "--train", files["train"],
                 "--out", tmp_path / "out")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"Error: {other / 'vocab.txt'}: differs from the teacher's vocab.txt (13 vs 14 tokens, first difference "
        "at line 14): a student must share the teacher's vocabulary"], proc.stderr
    assert not (tmp_path / "out").exists()
    proc = kbert("distill", "--teacher", files["teacher"], "--student", "mini", "--student-layers", "1",
                 "--train", files["train"], "--out", tmp_path / "out")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("Error: student_layers: copying teacher layers needs the student's hidden_size")
