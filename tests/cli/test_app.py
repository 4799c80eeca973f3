"""The `kbert` group: TensorFlow's C++ log lines (`E0000 ... oneDNN supports
DT_INT64 ...`, `cuInit`, absl's notices) never reach the user, on success or
error, unless `--verbose`; an error is exactly one `Error: ...` line."""

import os
import re
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

NATIVE = re.compile(r"^[IWEF]\d{4} |^INFO: |oneDNN|cuda|absl::InitializeLog|XNNPACK", re.MULTILINE)
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"good bad the film plot was very dull nice".split()]


def kbert(*args, cwd=None):
    # TF_CPP_MIN_LOG_LEVEL unset: what a user's shell has.
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KBERT_VERBOSE")}
    return subprocess.run([sys.executable, "-m", "kbert.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd or REPO, timeout=300)


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    """An (untrained) tiny classifier model directory: predict runs the full graph."""
    from kbert.config import BertConfig
    from kbert.model_dir import save_model
    from kbert.models import BertClassifier, BertEncoder

    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                        max_position_embeddings=32)
    path = tmp_path_factory.mktemp("cli") / "model"
    save_model(BertClassifier(BertEncoder(config), 2), path, vocab=VOCAB, labels=["neg", "pos"], seq_len=16)
    return path


def test_failing_finetune_prints_one_error_line_only(classifier_dir, tmp_path):
    missing = tmp_path / "missing.tsv"
    proc = kbert("finetune", "classify", "--init", classifier_dir, "--train", missing, "--out", tmp_path / "out",
                 "--seq-len", "16")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"Error: {missing}: file not found"], proc.stderr
    assert proc.stdout == "" and not (tmp_path / "out").exists()


def test_predict_prints_answers_and_no_tensorflow_lines(classifier_dir):
    proc = kbert("predict", classifier_dir, "a very good film", "dull plot")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr == "", proc.stderr
    assert [line.split('"label": ')[1][:5] in ('"neg"', '"pos"') for line in proc.stdout.splitlines()] == [True] * 2


def test_vocab_stderr_has_no_tensorflow_lines(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the film was very good.\nthe plot was dull.\n\nnice film.\n" * 30, encoding="utf-8")
    proc = kbert("vocab", "--corpus", corpus, "--size", "60", "--out", tmp_path / "vocab.txt")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not NATIVE.search(proc.stderr), proc.stderr
    assert proc.stdout.startswith("wrote ") and (tmp_path / "vocab.txt").exists()


def test_bad_seq_len_is_one_error_line(classifier_dir, tmp_path):
    proc = kbert("export", classifier_dir, "--seq-len", "0", "--eval", tmp_path / "x.tsv", "--out", tmp_path / "ex")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "Error: seq_len: 0 is outside 8..32 (the model's max_position_embeddings)"], proc.stderr
    assert not (tmp_path / "ex").exists()


def test_export_progress_only_no_tflite_runtime_lines(classifier_dir, tmp_path):
    # The TFLite interpreter logs "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." when it runs.
    dev = tmp_path / "dev.tsv"
    dev.write_text("sentence\tlabel\nvery good film\tpos\nthe plot was dull\tneg\n", encoding="utf-8")
    proc = kbert("export", classifier_dir, "--format", "tflite", "--quantize", "float32", "--eval", dev,
                 "--out", tmp_path / "ex")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.splitlines() == ["TFLite float32 ..."], proc.stderr
    assert (tmp_path / "ex" / "tflite" / "model_float32.tflite").exists()


FILTER_SCRIPT = textwrap.dedent(r"""
    import os, subprocess, sys
    from kbert.runtime import filter_native_logs

    assert filter_native_logs()
    os.write(2, b"kept 1\n")
    # What TensorFlow's C++ side writes (absl and the older glog format), straight to fd 2:
    os.write(2, b"E0000 00:00:1795933886.128939   10887 util.cc:131] oneDNN supports DT_INT64 only on "
                b"platforms with AVX-512. Falling back to the default Eigen-based implementation if present.\n"
                b"kept 2\n"
                b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    os.write(2, b"2024-05-01 12:00:00.123456: W tensorflow/core/framework/op.cc:42] a notice\n")
    # The TFLite runtime's minimal logger writes severity, message and newline apart.
    for piece in (b"INFO: ", b"Created TensorFlow Lite XNNPACK delegate for CPU.", b"\n"):
        os.write(2, piece)
    sys.stderr.write("progress 50%\r")  # a partial line passes on its own
    sys.stderr.flush()
    # A child process inherits the filtered fd 2.
    child = "import os; os.write(2, b'I0000 00:00:17.5   4 port.cc:153] child\\nkept 3\\n')"
    subprocess.run([sys.executable, "-c", child])
    print("Error: E0000 in a user's message is kept", file=sys.stderr)
    sys.exit(2)
""")


def test_filter_drops_native_lines_from_fd_2_and_children():
    proc = subprocess.run([sys.executable, "-c", FILTER_SCRIPT], capture_output=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == b"kept 1\nkept 2\nprogress 50%\rkept 3\nError: E0000 in a user's message is kept\n"


@pytest.mark.parametrize("verbose", [False, True])
def test_the_filter_is_on_unless_verbose(verbose):
    # The group installs the filter before any command runs (a stand-in records it).
    script = ("import sys, kbert.runtime as runtime; "
              "runtime.filter_native_logs = lambda: print('filter installed', file=sys.stderr); "
              "from kbert.cli import main; main([*sys.argv[1:], 'datasets', 'list'])")
    env = {k: v for k, v in os.environ.items() if k != "KBERT_VERBOSE"}
    proc = subprocess.run([sys.executable, "-c", script, *(["--verbose"] if verbose else [])], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert ("filter installed" in proc.stderr) is not verbose


def test_cli_is_a_layer_over_the_api_without_cycles():
    """kbert.cli imports API modules; no API module imports kbert.cli."""
    import pathlib

    import kbert

    package = pathlib.Path(kbert.__file__).parent
    importers = [str(path.relative_to(package)) for path in package.rglob("*.py")
                 if "cli" not in path.relative_to(package).parts
                 and re.search(r"^\s*(from kbert\.cli\b|import kbert\.cli\b|from kbert import cli\b)",
                               path.read_text(encoding="utf-8"), flags=re.M)]
    assert importers == []
    # Importing the CLI loads neither TensorFlow nor Keras (kbert --help stays fast).
    script = "import sys, kbert.cli; print(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stderr
