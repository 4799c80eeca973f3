"""Export of a sentence embedder: every artifact checked by cosine to the Keras
vectors (and retrieval Recall@10 on an eval set); the SavedModel serves
unit vectors and pair cosines from raw strings without kbert."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from kbert.config import BertConfig
from kbert.export import export
from kbert.export.run import ExportError
from kbert.model_dir import save_model
from kbert.models import BertEncoder, BertTextEmbedder
from kbert.tokenization import SPECIAL_TOKENS

WORDS = "the cat sat on mat a dog ran in park red blue bird tree".split()
VOCAB = list(SPECIAL_TOKENS) + WORDS


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    keras.utils.set_random_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                        max_position_embeddings=32)
    root = tmp_path_factory.mktemp("embed_export")
    # Not normalized: serving_default must still serve unit vectors.
    save_model(BertTextEmbedder(BertEncoder(config), normalize=False), root / "model", vocab=VOCAB, seq_len=16)
    rng = np.random.default_rng(0)
    rows = [(" ".join(rng.choice(WORDS, 3)), " ".join(rng.choice(WORDS, 6))) for _ in range(12)]
    pairs = root / "pairs.tsv"
    pairs.write_text("anchor\tpositive\n" + "".join(f"{a}\t{p}\n" for a, p in rows), encoding="utf-8")
    return root


def test_every_artifact_is_checked_by_cosine_and_recall(embedder, tmp_path):
    out = tmp_path / "exports" / "emb"
    report = export(embedder / "model", out, eval=embedder / "pairs.tsv", quantize=["float32"], latency_runs=2,
                    progress=lambda m: None)
    assert report["passed"], report["failures"]
    rows = {r["artifact"]: r for r in report["artifacts"]}
    assert list(rows) == ["keras", "savedmodel", "tflite_float32", "onnx"]
    for name in ("savedmodel", "tflite_float32", "onnx"):
        assert rows[name]["min_cosine"] >= 0.99999 and rows[name]["agreement"] is None, rows[name]
    for row in rows.values():
        assert row["recall@10"] == rows["keras"]["recall@10"] and row["metric"] == rows["keras"]["metric"]
        assert 0 < row["mean_cosine"] <= 1 + 1e-9 and row["min_cosine"] <= row["mean_cosine"] + 1e-12
    assert rows["savedmodel"]["text_min_cosine"] >= 0.99999
    assert rows["savedmodel"]["similarity_max_abs_diff"] < 1e-5
    card = json.loads((out / "model_card.json").read_text())
    assert card["tflite_outputs"] == ["embedding"] and "similarity" in card["savedmodel_signatures"]
    markdown = (out / "report.md").read_text()
    assert "| artifact | size (MB) | Recall@10 | metric | min cosine | mean cosine | latency (ms) |" in markdown

    # The SavedModel as TF Serving runs it: tensorflow and tensorflow_text only.
    script = r"""
import sys, numpy as np, tensorflow as tf, tensorflow_text
m = tf.saved_model.load(sys.argv[1])
texts = ["the cat sat on the mat", "a dog ran in the park", "", "bird " * 500]
e = m.signatures["serving_default"](text=tf.constant(texts))["embedding"].numpy()
s = m.signatures["similarity"](text=tf.constant(texts[:2]), text_pair=tf.constant(texts[1:3]))["similarity"].numpy()
assert "kbert" not in sys.modules
print(e.shape, np.abs(np.linalg.norm(e, axis=1) - 1).max() < 1e-5, np.abs(s - (e[:2] * e[1:3]).sum(1)).max() < 1e-5)
"""
    result = subprocess.run([sys.executable, "-c", script, str(out / "serving" / "1")], capture_output=True,
                            text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["(4,", "16)", "True", "True"]


def test_without_eval_data_the_built_in_sentences_are_checked(embedder, tmp_path):
    report = export(embedder / "model", tmp_path / "plain", formats=["savedmodel"], latency_runs=1,
                    progress=lambda m: None)
    assert report["passed"] and report["eval"] == {"file": None, "examples": 0}
    row = report["artifacts"][1]
    assert row["metric"] is None and row["min_cosine"] >= 0.99999 and "recall@10" not in row
    assert "Verified on the 10 built-in sentences" in (tmp_path / "plain" / "report.md").read_text()


def test_a_failed_cosine_check_writes_nothing(embedder, tmp_path):
    with pytest.raises(ExportError, match=r"savedmodel: min cosine to the Keras vectors .* < 1.01"):
        export(embedder / "model", tmp_path / "bad", formats=["savedmodel"], latency_runs=1,
               thresholds={"savedmodel_min_cosine": 1.01}, progress=lambda m: None)
    assert not (tmp_path / "bad").exists()
