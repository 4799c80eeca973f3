"""kbert's exported .tflite in MediaPipe Tasks for the web (`@mediapipe/tasks-text`, the C++
core compiled to wasm) in headless chromium, raw text in, against the Python `mediapipe`
package on the same files (mobile_demo/web/mediapipe/test/mediapipe.test.mjs).

Needs node, `npm ci --prefix mobile_demo/web` (playwright-core) and
`npm ci --prefix mobile_demo/web/mediapipe` (@mediapipe/tasks-text), Debian's chromium
and the `mediapipe` Python package; skips with the reason otherwise.
"""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from conftest import REPO
from training.test_finetune import VOCAB, encoder_dir, sentiment_rows, write_tsv  # noqa: F401

WEB = os.path.join(REPO, "mobile_demo", "web")
MEDIAPIPE_WEB = os.path.join(WEB, "mediapipe")
CHROMIUM = os.environ.get("KBERT_DEMO_CHROMIUM", "/usr/bin/chromium")
TEXTS = ["the movie was very good", "awful plot and a dull film", "Great, NICE film!",
         "the film was bad but the plot was fine", "", "good " * 40]


def need_browser_and_mediapipe():
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not os.path.isdir(os.path.join(WEB, "node_modules", "playwright-core")):
        pytest.skip("playwright-core is not installed: run `npm ci --prefix mobile_demo/web`")
    if not os.path.isdir(os.path.join(MEDIAPIPE_WEB, "node_modules", "@mediapipe", "tasks-text")):
        pytest.skip("@mediapipe/tasks-text is not installed: run `npm ci --prefix mobile_demo/web/mediapipe`")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install chromium (or set KBERT_DEMO_CHROMIUM)")
    pytest.importorskip("mediapipe.tasks.python.text")


@pytest.fixture(scope="module")
def exports(tmp_path_factory, encoder_dir):  # noqa: F811
    need_browser_and_mediapipe()
    from kbert.config import BertConfig
    from kbert.export import export
    from kbert.model_dir import save_model
    from kbert.tasks import registry
    from kbert.training.finetune import finetune

    directory = tmp_path_factory.mktemp("mediapipe_web")
    train = write_tsv(directory / "train.tsv", sentiment_rows(256, 0))
    dev = write_tsv(directory / "dev.tsv", sentiment_rows(64, 1))
    finetune("classify", encoder_dir, train, directory / "classifier", epochs=6, batch_size=16, lr=3e-3,
             seq_len=16, progress=False)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                        max_position_embeddings=64)
    save_model(registry.build("embed", config), directory / "embedder", vocab=VOCAB, seq_len=16)
    paths = {}
    for name, eval_file in (("classifier", dev), ("embedder", None)):
        out = directory / f"export_{name}"
        report = export(str(directory / name), out, formats=["tflite"], quantize=["dynamic"], eval=eval_file,
                        latency_runs=1, progress=lambda m: None)
        assert report["passed"], report["failures"]
        paths[name] = str(out / "tflite" / "model_dynamic.tflite")
    return paths


def test_browser_mediapipe_matches_python_mediapipe(exports, tmp_path):
    from kbert.export import metadata

    scores = metadata.classify(exports["classifier"], TEXTS)
    assert scores[:2].argmax(-1).tolist() == [1, 0]  # a model that tells texts apart
    reference = {"texts": TEXTS, "classifier": {"scores": scores.tolist()},
                 "embedder": {"embeddings": metadata.embed(exports["embedder"], TEXTS).tolist()}}
    ref_path, result_path = tmp_path / "ref.json", tmp_path / "result.json"
    ref_path.write_text(json.dumps(reference), encoding="utf-8")
    result = subprocess.run(
        ["node", "--test", os.path.join(MEDIAPIPE_WEB, "test", "mediapipe.test.mjs")], cwd=REPO,
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "KBERT_MP_CLASSIFIER": exports["classifier"], "KBERT_MP_EMBEDDER": exports["embedder"],
             "KBERT_MP_REFERENCE": str(ref_path), "KBERT_MP_RESULT": str(result_path),
             "KBERT_MP_CHROMIUM": CHROMIUM})
    output = result.stdout[-4000:] + result.stderr[-2000:]
    assert result.returncode == 0, output
    figures = json.loads(result_path.read_text())
    assert figures["loaded"] == {"classifier": True, "embedder": True}, output
    assert figures["classifierTexts"] == len(TEXTS) and figures["classifierAgreement"] == 1, output
    assert figures["classifierMaxDiff"] <= 1e-5 and figures["embedderMaxDiff"] <= 1e-5, output
    assert figures["labels"] == ["neg", "pos"]  # from the labels file kbert packed into the .tflite
    assert np.isclose(figures["embedderMinCosine"], 1.0, atol=1e-6)
