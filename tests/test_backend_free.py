"""The fine-tuning readers, tasks, scoring and checkpoint import do not need
TensorFlow, so a machine with another Keras backend can train from features
computed elsewhere (benchmarks/finetune_reference.py --run-bundle does)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = """
import sys

class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tensorflow_text"):
            raise ImportError("blocked: " + name)

sys.meta_path.insert(0, NoTensorFlow())
import kbert.checkpoints, kbert.data.ner, kbert.data.squad, kbert.metrics, kbert.model_dir
import kbert.tasks, kbert.training, kbert.vocab
from kbert.data import read_conll, read_squad, read_text_data
from kbert.tasks import get_task
task = get_task("ner")
sentences = task.read(sys.argv[1])
print(len(sentences), task.make_labels(sentences))
"""


def test_fine_tuning_modules_import_without_tensorflow(tmp_path):
    conll = tmp_path / "a.conll"
    conll.write_text("-DOCSTART- O\n\nEU B-ORG\nrejects O\n\nPeter B-PER\nBlackburn I-PER\n", encoding="utf-8")
    env = dict(os.environ, KERAS_BACKEND="numpy", PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(conll)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "2 ['O', 'B-ORG', 'B-PER', 'I-PER']"
