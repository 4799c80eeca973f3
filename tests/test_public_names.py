"""No public name equals a submodule's name, so importing a submodule can never
replace a public function (issue: `kbert.evaluate(...)` then `kbert.finetune(...)`
raised "'module' object is not callable")."""

import importlib
import pkgutil
import subprocess
import sys

import kbert


def _submodules(package):
    return {info.name for info in pkgutil.iter_modules(package.__path__)}


def test_no_public_name_equals_a_submodule():
    for package_name in ["kbert", "kbert.tokenization", "kbert.training", "kbert.checkpoints", "kbert.data",
                         "kbert.tasks", "kbert.export", "kbert.serving", "kbert.cli", "kbert.recipes",
                         "kbert.demo", "kbert.data.pretraining"]:
        package = importlib.import_module(package_name)
        public = set(getattr(package, "__all__", []))
        clash = public & _submodules(package)
        assert not clash, f"{package_name}: public names equal submodules: {sorted(clash)}"


def test_public_functions_stay_callable_after_every_submodule_is_imported():
    # In a fresh interpreter: call-order independent, as a user's script would be.
    script = """
import importlib, pkgutil, kbert
for info in pkgutil.walk_packages(kbert.__path__, "kbert."):
    if info.name.startswith(("kbert.cli", "kbert.export.check_savedmodel")):
        continue
    importlib.import_module(info.name)
for name in kbert.__all__:
    value = getattr(kbert, name)
    assert not type(value).__name__ == "module", name
for name in ("finetune", "evaluate", "predict", "pretrain", "quickstart"):
    assert callable(getattr(kbert, name)), name
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


def test_all_lists_only_names_that_resolve():
    for name in kbert.__all__:
        assert getattr(kbert, name) is not None


def test_python_api_keeps_tensorflow_start_up_lines_off_stderr():
    # A name that needs TensorFlow starts it as the CLI does: a script using the
    # Python API sees its own output only (TF 2.21 prints oneDNN/CUDA/absl lines
    # at import and at the first graph run, whatever TF_CPP_MIN_LOG_LEVEL says).
    code = """
import sys, kbert
assert "tensorflow" not in sys.modules  # light names stay light
kbert.BertConfig, kbert.KbertError, kbert.load_vocab
assert "tensorflow" not in sys.modules
config = kbert.BertConfig.preset("tiny")
model = kbert.BertEncoder(config)
import tensorflow as tf
ids = tf.zeros([2, 8], tf.int32)
tf.function(lambda x: model({"token_ids": x, "segment_ids": x, "padding_mask": tf.ones_like(x)}))(ids)
print("mine", file=sys.stderr)
"""
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("KBERT_VERBOSE", "TF_CPP_MIN_LOG_LEVEL")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "mine\n"
