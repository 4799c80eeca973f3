"""One worker of the multi-worker pre-training test (run as a subprocess with TF_CONFIG)."""

import hashlib
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import keras  # noqa: E402
if os.environ.get("KBERT_DEBUG"):
    keras.config.disable_traceback_filtering()

from kbert.config import BertConfig  # noqa: E402
from kbert.data import PretrainingConfig  # noqa: E402
from kbert.training.pretrain import pretrain  # noqa: E402

corpus, vocab, out, digest_path = sys.argv[1:5]
result = pretrain(
    out, vocab=vocab, corpus=[corpus],
    config=BertConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_position_embeddings=64),
    data_config=PretrainingConfig(seq_len=32, max_predictions_per_seq=5, seed=7),
    batch_size=8, steps=6, checkpoint_every=3, eval_batches=1, holdout=0.0, progress=False,
)
weights = result["model"].get_weights()
digest = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes() for w in weights)).hexdigest()
with open(digest_path, "w") as f:
    json.dump({"digest": digest, "iterations": result["metrics"]["optimizer_iterations"]}, f)
