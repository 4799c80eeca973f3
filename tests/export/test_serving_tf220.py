"""The exported SavedModel under TensorFlow 2.20 + TF Text 2.20 (slow).

kbert exports with TensorFlow 2.21, but TF Serving 2.20 serves with the
TensorFlow and TF Text 2.20 ops it bundles: an op or attribute new in 2.21
would make the model fail to load there. This test loads the SavedModel with
check_savedmodel.py (as the export does) in a separate venv holding
tensorflow 2.20 + tensorflow-text 2.20, built once and cached at
$KBERT_TF220_VENV (default ~/.cache/kbert/venv-tf220), and compares the
answers with the Keras model's.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from test_export import classifier  # noqa: F401
from training.test_finetune import encoder_dir  # noqa: F401
from kbert.export import export

PINS = ["tensorflow==2.20.0", "tensorflow-text==2.20.1"]
CHECK = os.path.join(REPO, "kbert", "export", "check_savedmodel.py")
TEXTS = ["", "good \U0001F600 movie", "\U0001F3AC\U0001F37F awful", "très bon film, good", "x" * 2000]
RAW = "\xff\xfe bad \U0001F600 movie".encode("latin-1", "replace") + b"\x80"  # not UTF-8
PROBE = r"""
import json, sys, tensorflow as tf, tensorflow_text
out = tf.saved_model.load(sys.argv[1]).signatures["serving_default"](text=tf.constant([bytes.fromhex(sys.argv[2])]))
print(json.dumps([tf.__version__, tensorflow_text.__version__, out["labels"].numpy()[0].decode(),
                  out["logits"].numpy()[0].tolist()]))
"""


def tf220_python():
    """The venv's python, building the venv when missing; skips when the
    package index cannot be reached."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.environ.get("KBERT_TF220_VENV") or os.path.join(cache, "kbert", "venv-tf220")
    python, marker = os.path.join(path, "bin", "python"), os.path.join(path, "kbert-pins.txt")
    if os.path.exists(marker) and open(marker).read().split() == PINS:
        return python
    probe = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "tensorflow-text", "--timeout", "15",
                            "--retries", "0"], capture_output=True, text=True)
    if probe.returncode != 0 or "2.20.1" not in probe.stdout:
        reason = (probe.stderr.strip().splitlines() or ["no 2.20.1 listed"])[-1]
        pytest.skip(f"cannot reach the package index for {' '.join(PINS)}: {reason}")
    shutil.rmtree(path, ignore_errors=True)
    for command in ([sys.executable, "-m", "venv", path], [python, "-m", "pip", "install", "-q", *PINS]):
        result = subprocess.run(command, capture_output=True, text=True, env=_env())
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    with open(marker, "w") as f:
        f.write("\n".join(PINS) + "\n")
    return python


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return dict(env, TF_CPP_MIN_LOG_LEVEL="2")


@pytest.mark.slow
def test_savedmodel_loads_and_agrees_under_tf220(classifier, tmp_path):  # noqa: F811
    from kbert.model_dir import load_model, read_model_dir

    model_dir, dev = classifier
    python = tf220_python()
    export(model_dir, tmp_path / "out", formats=["savedmodel"], latency_runs=1, progress=lambda m: None)
    saved = str(tmp_path / "out" / "serving" / "1")

    info = read_model_dir(model_dir)
    texts = [line.split("\t")[0] for line in open(dev, encoding="utf-8").read().splitlines()[1:33]] + TEXTS
    inputs = {k: np.asarray(v) for k, v in info.tokenizer()(texts + [RAW], seq_len=info.seq_len).items()}
    logits = np.asarray(load_model(model_dir)(inputs, training=False))
    labels = [info.labels[i] for i in logits.argmax(-1)]
    assert len(set(labels)) == 2  # both classes occur: the label check means something

    np.savez(tmp_path / "inputs.npz", **inputs)
    (tmp_path / "texts.json").write_text(json.dumps({"text": texts}), encoding="utf-8")
    result = subprocess.run([python, CHECK, saved, str(tmp_path / "inputs.npz"), str(tmp_path / "texts.json"),
                             str(tmp_path / "out.npz"), "1"], capture_output=True, text=True, env=_env())
    assert result.returncode == 0, result.stderr[-4000:]
    with np.load(tmp_path / "out.npz") as z:
        np.testing.assert_allclose(z["logits"], logits, rtol=0, atol=1e-5)
        np.testing.assert_allclose(z["text.logits"], logits[:-1], rtol=0, atol=1e-5)
        assert list(z["text.labels"]) == labels[:-1]

    # A second process in the venv reports its versions and serves non-UTF-8 bytes.
    result = subprocess.run([python, "-c", PROBE, saved, RAW.hex()], capture_output=True, text=True, env=_env())
    assert result.returncode == 0, result.stderr[-4000:]
    tf_version, text_version, label, raw_logits = json.loads(result.stdout.strip().splitlines()[-1])
    assert tf_version.startswith("2.20.") and text_version.startswith("2.20."), (tf_version, text_version)
    assert label == labels[-1]
    np.testing.assert_allclose(raw_logits, logits[-1], rtol=0, atol=1e-5)
