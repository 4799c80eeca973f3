"""`kbert.embed` and `kbert.VectorIndex`: exact search, saved and loaded
without pickles, outputs through the guard."""

import keras
import numpy as np
import pytest

import kbert
from kbert.config import BertConfig
from kbert.errors import DataError, KbertError, OutputError
from kbert.model_dir import save_model
from kbert.models import BertEncoder, BertTextEmbedder
from kbert.tokenization import SPECIAL_TOKENS

VOCAB = list(SPECIAL_TOKENS) + "the cat sat on mat a dog ran in park".split()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    keras.utils.set_random_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                        max_position_embeddings=32)
    path = tmp_path_factory.mktemp("vectors") / "emb"
    save_model(BertTextEmbedder(BertEncoder(config), pooling="mean", normalize=False), path, vocab=VOCAB, seq_len=16)
    return path


def test_embed_and_search(model_dir, tmp_path):
    one = kbert.embed(model_dir, "the cat")
    assert one.shape == (1, 16) and one.dtype == np.float32
    docs = ["the cat sat on the mat", "a dog ran in the park", "the cat"]
    index = kbert.VectorIndex.build(model_dir, docs)
    hits = index.search(model_dir, ["the cat", "a dog ran"], k=2)
    assert [h["text"] for h in hits[0]][0] == "the cat" and hits[0][0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert [h["rank"] for h in hits[1]] == [1, 2] and hits[1][0]["score"] >= hits[1][1]["score"]
    # Exact search: the scores are the cosines of the (unnormalized) model vectors.
    vectors = kbert.embed(model_dir, docs)
    query = kbert.embed(model_dir, "a dog ran")[0]
    cosines = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
    assert hits[1][0]["index"] == int(np.argmax(cosines)) and hits[1][0]["score"] == pytest.approx(cosines.max(), 1e-5)
    with pytest.raises(KbertError, match="k: expected a positive number"):
        index.search(model_dir, "cat", k=0)


def test_saved_index_loads_and_is_guarded(model_dir, tmp_path):
    index = kbert.VectorIndex.build(model_dir, ["the cat", "a dog"])
    index.save(tmp_path / "idx")
    loaded = kbert.VectorIndex.load(tmp_path / "idx")
    np.testing.assert_allclose(loaded.vectors, index.vectors, atol=1e-7)
    assert loaded.texts == index.texts and loaded.lines == [1, 2] and loaded.seq_len == 16
    index.save(tmp_path / "idx")  # its own output: replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="holds other files"):
        index.save(tmp_path / "mine")
    (tmp_path / "idx" / "corpus.txt").write_text("only one line\n")
    with pytest.raises(DataError, match="disagree in length"):
        kbert.VectorIndex.load(tmp_path / "idx")
