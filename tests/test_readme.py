"""The README's Python code runs as written (so it cannot rot).

Every ```python block is executed, in order and in one namespace, in an empty
directory holding what a reader would have there: a tiny model directory at the
path the snippet starts from (`kbert quickstart`'s encoder)."""

import os
import re

import keras

from conftest import REPO
from kbert.config import BertConfig
from kbert.model_dir import read_model_dir, save_model
from kbert.models import BertEncoder
from kbert.tokenization import SPECIAL_TOKENS

QUICKSTART_ENCODER = os.path.join("runs", "quickstart", "encoder")


def python_blocks():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_readme_has_python_code_starting_from_the_quickstart_encoder():
    code = "\n".join(python_blocks())
    assert code, "README.md has no ```python block"
    # The fixture below stands in for this directory; if the README starts from
    # elsewhere, the fixture must follow.
    assert '"runs/quickstart/encoder"' in code


def test_readme_python_blocks_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    words = "a gripping funny film dull and far too long delight i want my two hours back great".split()
    vocab = list(SPECIAL_TOKENS) + words
    keras.utils.set_random_seed(0)
    config = BertConfig.preset("tiny", vocab_size=len(vocab))
    save_model(BertEncoder(config), QUICKSTART_ENCODER, vocab=vocab, seq_len=32)

    namespace = {"__name__": "__main__"}
    for i, block in enumerate(python_blocks()):
        exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)

    # What the snippet promises: a classify model dir with the string labels,
    # logits from model.predict, labels from kbert.predict.
    info = read_model_dir("runs/my_sentiment")
    assert info.task == "classify" and info.labels == ["negative", "positive"]
    assert namespace["logits"].shape == (1, 2)
    printed = capsys.readouterr().out
    assert re.search(r"'label': '(negative|positive)'", printed), printed

