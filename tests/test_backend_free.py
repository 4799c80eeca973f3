"""The fine-tuning readers, tasks, scoring and checkpoint import do not need
TensorFlow, so a machine with another Keras backend can train from features
computed elsewhere (benchmarks/finetune_reference.py --run-bundle does)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = """
import sys

import kbert.checkpoints, kbert.data.ner, kbert.data.squad, kbert.metrics, kbert.model_dir
import kbert.tasks, kbert.training.optimizer, kbert.training.distribution, kbert.tokenization.vocab, kbert.runtime
from kbert.data import read_conll, read_squad, read_text_data
from kbert.tasks import get_task
task = get_task("ner")
sentences = task.read(sys.argv[1])
assert not any(m.split(".")[0] in ("tensorflow", "tensorflow_text") for m in sys.modules)
print(len(sentences), task.make_labels(sentences))
"""


def test_fine_tuning_modules_import_without_tensorflow(tmp_path):
    pytest.importorskip("torch")  # the test extras install it; Keras' numpy backend needs JAX
    conll = tmp_path / "a.conll"
    conll.write_text("-DOCSTART- O\n\nEU B-ORG\nrejects O\n\nPeter B-PER\nBlackburn I-PER\n", encoding="utf-8")
    env = dict(os.environ, KERAS_BACKEND="torch", PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(conll)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "2 ['O', 'B-ORG', 'B-PER', 'I-PER']"
