"""No command destroys a user's files: what `--out` may replace, the lock, the
leftovers of interrupted runs, read-only and full filesystems (kbert.io's
output rule), each driven through the `kbert` command line as a user would."""

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from .helpers import FAST, VOCAB, cli, encoder_dir, kbert, one_error_line, sentiment_tsv


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny encoder dir, training data, a corpus and a vocab, shared by the module."""
    root = tmp_path_factory.mktemp("inputs")
    corpus = root / "corpus.txt"
    corpus.write_text("the movie was good .\nthe plot was dull .\n\nthe film is great .\nthe end was poor .\n"
                      * 20, encoding="utf-8")
    vocab = root / "vocab.txt"
    vocab.write_text("".join(t + "\n" for t in VOCAB), encoding="utf-8")
    return {"init": encoder_dir(root / "encoder"), "train": sentiment_tsv(root / "train.tsv"),
            "corpus": str(corpus), "vocab": str(vocab)}


def finetune(files, out, *extra):
    return ["finetune", "classify", "--init", files["init"], "--train", files["train"], "--out", out, *FAST, *extra]


def user_dir(path):
    path.mkdir()
    (path / "keep.txt").write_text("x")
    return path


def assert_kept(path):
    """`path` holds the user's file, unchanged, and nothing beside it was left."""
    assert os.listdir(path) == ["keep.txt"] and (path / "keep.txt").read_text() == "x"
    assert sorted(os.listdir(path.parent)) == [path.name], os.listdir(path.parent)


def test_dir_with_user_files_is_refused(files, tmp_path):
    out = user_dir(tmp_path / "d")
    code, stdout, stderr = kbert(*finetune(files, out))
    assert code == 2 and stdout == ""
    one_error_line(stderr, str(out), "keep.txt", "--overwrite")
    assert_kept(out)


def test_current_directory_is_never_replaced(files, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(files["init"], work / "M")
    shutil.copy(files["train"], work / "T.tsv")
    before = sorted(os.listdir(work))
    code, _, stderr = kbert("finetune", "classify", "--init", "M", "--train", "T.tsv", "--out", ".", *FAST,
                            "--overwrite", cwd=work)
    assert code == 2
    one_error_line(stderr, "current directory")
    assert sorted(os.listdir(work)) == before and (work / "M" / "model.keras").exists()


@pytest.mark.parametrize("which", ["parent", "init"])
def test_a_directory_holding_an_input_is_never_replaced(files, tmp_path, which):
    data = tmp_path / "data"
    data.mkdir()
    train = shutil.copy(files["train"], data / "train.tsv")
    init = shutil.copytree(files["init"], tmp_path / "init")
    out = data if which == "parent" else init
    result = cli("finetune", "classify", "--init", init, "--train", train, "--out", out, *FAST, "--overwrite")
    assert result.exit_code == 2
    one_error_line(result.stderr_lines, "an input of this run")
    assert (data / "train.tsv").read_bytes() == open(files["train"], "rb").read()
    assert sorted(os.listdir(init)) == sorted(os.listdir(files["init"]))


def test_rerun_replaces_its_own_output_and_overwrite_replaces_others(files, tmp_path):
    out = tmp_path / "model"
    assert cli(*finetune(files, out)).exit_code == 0
    assert json.loads((out / ".kbert.json").read_text())["kind"] == "model_dir"
    first = (out / "metrics.json").stat().st_mtime_ns
    (out / ".kbert.json").unlink()  # as a model dir written before the marker existed
    assert cli(*finetune(files, out)).exit_code == 0  # its own earlier output: replaced
    assert (out / "metrics.json").stat().st_mtime_ns != first and (out / ".kbert.json").exists()
    (out / "notes.txt").write_text("mine")
    result = cli(*finetune(files, out))
    assert result.exit_code == 2
    one_error_line(result.stderr_lines, "notes.txt", "--overwrite")
    assert (out / "notes.txt").read_text() == "mine"
    assert cli(*finetune(files, out, "--overwrite")).exit_code == 0  # asked for
    assert not (out / "notes.txt").exists() and (out / "model.keras").exists()
    assert sorted(os.listdir(tmp_path)) == ["model"]


@pytest.mark.parametrize("command", ["pretrain", "pretrain-data", "import", "export-hf", "export",
                                     "datasets-prepare", "quickstart"])
def test_every_writer_refuses_a_foreign_directory(files, tmp_path, command):
    out = user_dir(tmp_path / "out")
    args = {
        "pretrain": ["pretrain", "--corpus", files["corpus"], "--vocab", files["vocab"], "--steps", "1"],
        "pretrain-data": ["pretrain-data", "--corpus", files["corpus"], "--vocab", files["vocab"]],
        "import": ["import", "--from", "hf", files["init"]],
        "export-hf": ["export-hf", files["init"]],
        "export": ["export", files["init"], "--format", "savedmodel"],
        "datasets-prepare": ["datasets", "prepare", "rt_polarity"],
        "quickstart": ["quickstart", "--fast"],
    }[command]
    result = cli(*args, "--out", out)
    assert result.exit_code == 2, result.output
    one_error_line(result.stderr_lines, str(out), "keep.txt", "--overwrite")
    assert_kept(out)


def test_vocab_never_replaces_its_corpus_nor_a_foreign_file(files, tmp_path):
    corpus = shutil.copy(files["corpus"], tmp_path / "corpus.txt")
    text = open(corpus, encoding="utf-8").read()
    result = cli("vocab", "--corpus", corpus, "--size", "40", "--out", corpus, "--overwrite")
    assert result.exit_code == 2
    one_error_line(result.stderr_lines, "an input of this run")
    assert open(corpus, encoding="utf-8").read() == text
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    result = cli("vocab", "--corpus", corpus, "--size", "40", "--out", notes)
    assert result.exit_code == 2
    one_error_line(result.stderr_lines, "notes.txt", "--overwrite")
    assert "learn vocab" not in result.stderr  # refused before the learning
    assert notes.read_text() == "my notes\n"
    vocab = tmp_path / "vocab.txt"
    for _ in range(2):  # a vocab kbert learned is replaced by the next run
        assert cli("vocab", "--corpus", corpus, "--size", "40", "--out", vocab).exit_code == 0
    assert sorted(os.listdir(tmp_path)) == [".vocab.txt.kbert.json", "corpus.txt", "notes.txt", "vocab.txt"]


HOLD = """
import sys, time
from kbert.outputs import claim_output
with claim_output(sys.argv[1], "model_dir"):
    print("holding", flush=True)
    time.sleep(120)
"""


def test_a_second_run_on_the_same_out_is_refused(files, tmp_path):
    out = tmp_path / "model"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        result = cli(*finetune(files, out))
        assert result.exit_code == 2
        one_error_line(result.stderr_lines, str(out), f"another kbert run (pid {holder.pid})")
    finally:
        holder.kill()  # as kill -9 would: the kernel releases the lock
        holder.wait()
    assert cli(*finetune(files, out)).exit_code == 0
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no lock file left


KILLED_WRITE = """
import os, sys, time
from kbert.outputs import output_dir
with output_dir(sys.argv[1], "model_dir") as tmp:
    with open(os.path.join(tmp, "model.keras"), "wb") as f:
        f.write(os.urandom(1 << 20))
    print("writing", flush=True)
    time.sleep(120)
"""


def test_leftovers_of_interrupted_runs_are_removed_and_reported(files, tmp_path):
    out = tmp_path / "model"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITE, str(out)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    (tmp_path / "model.work" / "logs").mkdir(parents=True)  # a failed fine-tune's scratch dir
    os.symlink(tmp_path / "gone", tmp_path / ".old-model-abcd1234")  # dangling, from an old version
    (tmp_path / "other").mkdir()  # not this output's: kept
    left = sorted(os.listdir(tmp_path))
    assert any(name.startswith(".tmp-model-") for name in left) and ".model.lock" in left
    result = cli(*finetune(files, out))
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr_lines if "leftover" in line]
    assert len(notes) == 1 and "of an interrupted run" in notes[0] and "model.work" in notes[0]
    assert sorted(os.listdir(tmp_path)) == ["model", "other"]


def test_symlinked_out_keeps_its_link_and_leaves_nothing(files, tmp_path):
    real = tmp_path / "real"
    shutil.copytree(files["init"], real / "model")
    link = tmp_path / "link"
    os.symlink(real / "model", link)
    assert cli(*finetune(files, link)).exit_code == 0
    assert os.path.islink(link) and os.readlink(link) == str(real / "model")
    assert json.loads((real / "model" / "config.json").read_text())["task"] == "classify"
    assert sorted(os.listdir(tmp_path)) == ["link", "real"] and sorted(os.listdir(real)) == ["model"]


def test_a_failed_finetune_leaves_neither_out_nor_its_work_dir(files, tmp_path, monkeypatch):
    import kbert.model_dir

    def disk_full(*args, **kwargs):  # the disk fills up while the model is saved
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "model"))

    monkeypatch.setattr(kbert.model_dir, "save_model", disk_full)
    result = cli(*finetune(files, tmp_path / "model"))
    assert result.exit_code == 2
    one_error_line(result.stderr_lines, "model", "No space left on device")
    assert os.listdir(tmp_path) == []


@contextlib.contextmanager
def mounted_tmpfs(path, options):
    """A tmpfs at `path` (root only): read-only or of a given size."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)])


@pytest.fixture
def read_only(tmp_path):
    """A directory nobody may write in: a read-only mount as root, else mode 0555."""
    path = tmp_path / "ro"
    if os.geteuid() == 0:
        with mounted_tmpfs(path, "ro,size=1m"):
            yield path
    else:
        path.mkdir(mode=0o555)
        yield path
        path.chmod(0o755)


def test_read_only_destination_is_refused_before_any_work(files, read_only):
    result = cli(*finetune(files, read_only / "model"))
    assert result.exit_code == 2 and "Epoch" not in result.stdout
    one_error_line(result.stderr_lines, str(read_only / "model"), "cannot write in")
    result = cli("vocab", "--corpus", files["corpus"], "--size", "40", "--out", read_only / "vocab.txt")
    assert result.exit_code == 2 and "learn vocab" not in result.stderr
    one_error_line(result.stderr_lines, "vocab.txt", "cannot write in")
    assert os.listdir(read_only) == []


def test_full_disk_is_found_before_training_and_while_writing(files, tmp_path):
    with mounted_tmpfs(tmp_path / "small", "size=256k") as small:
        result = cli(*finetune(files, small / "model"))
        assert result.exit_code == 2 and "Epoch" not in result.stdout
        one_error_line(result.stderr_lines, str(small / "model"), "needs about", "free")
        # A disk that fills up while the vocab is written: one line, no partial file.
        with open(small / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 4096)
        result = cli("vocab", "--corpus", files["corpus"], "--size", "40", "--out", small / "vocab.txt")
        assert result.exit_code == 2
        lines = [line for line in result.stderr_lines if not line.startswith("learn vocab:")]  # progress bar
        one_error_line(lines, "vocab.txt", "No space left on device")
        assert sorted(os.listdir(small)) == ["filler"]
