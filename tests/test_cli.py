import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from kbert.cli import main
from kbert.version import __version__

TEXT = "The quick brown fox jumps over the lazy dog.\nCafé au lait, naïve résumé!\n\nA second document here.\n"


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output


@pytest.mark.parametrize("command", [[], ["vocab"]])
def test_help_on_every_command(command):
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output
    assert run(*command, "-h").exit_code == 0


def test_every_registered_command_has_help():
    for name in main.commands:
        assert run(name, "--help").exit_code == 0, name


def test_vocab_learns_and_writes(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT * 20, encoding="utf-8")
    out = tmp_path / "vocab.txt"
    result = run("vocab", "--corpus", str(corpus), "--size", "60", "--out", str(out))
    assert result.exit_code == 0, result.output
    tokens = out.read_text(encoding="utf-8").splitlines()
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert 10 < len(tokens) <= 60
    # lowercased and accents stripped: "Café", "naïve", "résumé" leave no trace
    assert all(t == t.lower() and not set(t) & set("éïÉ") for t in tokens[5:])
    assert "the" in tokens


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "file not found"),
        (b"", "file is empty"),
        (b"ok\n\xff\xfe\n", "c.txt:2: not valid UTF-8"),
        (b"\x00\x01\x02binary", "binary"),
    ],
)
def test_vocab_bad_input_one_line_exit_2_no_output(tmp_path, content, message):
    corpus = tmp_path / "c.txt"
    if content is not None:
        corpus.write_bytes(content)
    out = tmp_path / "vocab.txt"
    result = run("vocab", "--corpus", str(corpus), "--size", "50", "--out", str(out))
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_console_script_error_is_one_line(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-m", "kbert.cli", "vocab", "--corpus", str(tmp_path / "missing.txt"),
         "--size", "50", "--out", str(tmp_path / "v.txt")],
        capture_output=True, text=True, env=env,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("Error:")
    assert "Traceback" not in proc.stderr
    assert "missing.txt: file not found" in proc.stderr


def test_usage_error_exit_2():
    result = run("vocab", "--size", "50")
    assert result.exit_code == 2 and "--corpus" in result.output

