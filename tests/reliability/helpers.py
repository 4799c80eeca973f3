"""Shared set-up of the reliability tests: a tiny model dir, data files, and
ways to run `kbert` as a user does (a real process, or click's runner)."""

import os
import subprocess
import sys

from click.testing import CliRunner

WORDS = "good great fine nice bad awful poor dull the movie film plot was is very and but".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *WORDS]
# One quick epoch of the tiny model.
FAST = ["--epochs", "1", "--batch-size", "8", "--seq-len", "16"]


def sentiment_tsv(path, n=24):
    rows = [f"the movie was {WORDS[i % 8]}\t{'pos' if i % 8 < 4 else 'neg'}" for i in range(n)]
    path.write_text("sentence\tlabel\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def encoder_dir(path):
    from kbert.config import BertConfig
    from kbert.model_dir import save_model
    from kbert.models import BertEncoder

    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                        max_position_embeddings=32)
    save_model(BertEncoder(config), path, vocab=VOCAB, seq_len=16)
    return str(path)


def kbert(*args, cwd=None):
    """`python -m kbert.cli ARGS` in a fresh process: (exit code, stdout, stderr lines)."""
    proc = subprocess.run([sys.executable, "-m", "kbert.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "PYTHONPATH": _repo()})
    return proc.returncode, proc.stdout, proc.stderr.strip().splitlines()


def cli(*args):
    """The same command in this process (click's runner): the result, with
    `.stderr_lines`."""
    from kbert.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    result.stderr_lines = result.stderr.strip().splitlines()
    return result


def one_error_line(lines, *parts):
    """The lines are exactly one `Error: ...` line holding every part."""
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: "), lines
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def _repo():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
