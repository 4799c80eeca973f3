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
    # 80: the 29 characters and 26 "##" letters leave room for whole words.
    result = run("vocab", "--corpus", str(corpus), "--size", "80", "--out", str(out))
    assert result.exit_code == 0, result.output
    tokens = out.read_text(encoding="utf-8").splitlines()
    assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(tokens) == 80
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


@pytest.mark.parametrize("content", [None, b"fine\n\xff\xfe\n"])
def test_console_script_error_is_exactly_one_line(tmp_path, content):
    corpus = tmp_path / "corpus.txt"
    if content is not None:
        corpus.write_bytes(content)
    proc = subprocess.run(
        [sys.executable, "-m", "kbert.cli", "vocab", "--corpus", str(corpus),
         "--size", "50", "--out", str(tmp_path / "v.txt")],
        capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    expected = "corpus.txt: file not found" if content is None else "corpus.txt:2: not valid UTF-8"
    assert lines[0].startswith("Error: ") and expected in lines[0]
    assert proc.stdout == "" and not (tmp_path / "v.txt").exists()


def test_usage_error_exit_2():
    result = run("vocab", "--size", "50")
    assert result.exit_code == 2 and "--corpus" in result.output


def test_import_and_export_hf_commands(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from kbert.tokenization import SPECIAL_TOKENS

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=40, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=16, max_position_embeddings=32, num_labels=2)
    source = tmp_path / "hf"
    transformers.BertForSequenceClassification(config).save_pretrained(source)
    (source / "vocab.txt").write_text("".join(t + "\n" for t in list(SPECIAL_TOKENS) + [f"t{i}" for i in range(35)]))
    # A length the model cannot take is an error, not silently cut to max_position_embeddings.
    result = run("import", "--from", "hf", str(source), "--out", str(tmp_path / "kb"), "--seq-len", "100000")
    assert result.exit_code == 2 and result.output.splitlines() == [
        "Error: seq_len: 100000 is outside 8..32 (the model's max_position_embeddings)"]
    assert not (tmp_path / "kb").exists()
    # Without --seq-len: 128, or the model's maximum when that is shorter.
    result = run("import", "--from", "hf", str(source), "--out", str(tmp_path / "default"))
    assert result.exit_code == 0, result.output
    from kbert.model_dir import read_model_dir

    assert read_model_dir(tmp_path / "default").seq_len == 32
    result = run("import", "--from", "hf", str(source), "--out", str(tmp_path / "kb"), "--seq-len", "16")
    assert result.exit_code == 0, result.output
    assert "imported classify model" in result.output
    result = run("export-hf", str(tmp_path / "kb"), "--out", str(tmp_path / "back"))
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tmp_path / "back")) == [".kbert.json", "config.json", "model.safetensors",
                                                      "tokenizer_config.json", "vocab.txt"]
    # vocab/embedding mismatch: one line, exit 2, nothing written
    (source / "vocab.txt").write_text("".join(t + "\n" for t in SPECIAL_TOKENS))
    result = run("import", "--from", "hf", str(source), "--out", str(tmp_path / "bad"))
    assert result.exit_code == 2
    assert "vocab.txt: 5 tokens but the embedding matrix has 40 rows" in result.output
    assert not (tmp_path / "bad").exists()
    result = run("import", "--from", "google", str(tmp_path / "nowhere"), "--out", str(tmp_path / "bad"))
    assert result.exit_code == 2 and "directory not found" in result.output


def test_readme_cli_block_lists_every_command():
    import re

    from conftest import REPO

    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        section = f.read().split("\n## CLI\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```\n(.*?)^```$", section, flags=re.S | re.M).group(1)
    listed = {line.split()[1] for line in block.splitlines() if line.startswith("kbert ")}
    assert set(main.commands) <= listed, sorted(set(main.commands) - listed)
    for group in ("finetune", "datasets"):
        line = next(line for line in block.splitlines() if line.startswith(f"kbert {group} "))
        for sub in main.commands[group].commands:
            assert sub in line, (group, sub)
