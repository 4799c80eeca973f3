"""sentence-transformers directories: `kbert import --from hf` reads the
pooling modules.json declares, export-hf writes them back, the library loads
what kbert writes, and what kbert cannot import is refused in one line."""

import json
import os

import keras
import numpy as np
import pytest

from kbert.checkpoints import export_hf, import_checkpoint, load_hf
from kbert.config import BertConfig
from kbert.errors import ConfigError
from kbert.models import BertEncoder, BertTextEmbedder
from kbert.tokenization import SPECIAL_TOKENS

WORDS = "the cat sat on mat a dog ran in park".split()
VOCAB = list(SPECIAL_TOKENS) + WORDS


def tiny_embedder(pooling="mean", normalize=True):
    keras.utils.set_random_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                        max_position_embeddings=32)
    return BertTextEmbedder(BertEncoder(config), pooling=pooling, normalize=normalize)


@pytest.mark.parametrize("pooling, normalize", [("mean", True), ("cls", False), ("max", True),
                                                ("mean_sqrt_len", False)])
def test_export_writes_a_sentence_transformers_directory_that_imports_back(tmp_path, pooling, normalize):
    model = tiny_embedder(pooling, normalize)
    export_hf(model, tmp_path / "st", vocab=VOCAB, seq_len=24)
    modules = json.loads((tmp_path / "st" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling"] + ["Normalize"] * normalize
    config = json.loads((tmp_path / "st" / "config.json").read_text())
    assert config["architectures"] == ["BertModel"]
    again, info = load_hf(str(tmp_path / "st"))
    assert isinstance(again, BertTextEmbedder) and (again.pooling, again.normalize) == (pooling, normalize)
    assert info["task"] == "embed" and info["seq_len"] == 24
    for a, b in zip(model.weights, again.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    encoder, info = load_hf(str(tmp_path / "st"), architecture="BertModel")  # the encoder alone
    assert isinstance(encoder, BertEncoder) and info["task"] == "encoder"
    directory = import_checkpoint(str(tmp_path / "st"), tmp_path / "kbert", "hf")
    assert directory.task == "embed" and directory.seq_len == 24


def test_sentence_transformers_loads_kbert_exports(tmp_path):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from kbert.tasks.embed import embed_texts
    from kbert.tokenization import BertTokenizer

    model = tiny_embedder("mean", True)
    export_hf(model, tmp_path / "st", vocab=VOCAB, seq_len=24)
    texts = ["the cat sat on the mat", "a dog ran in the park", "cat"]
    theirs = sentence_transformers.SentenceTransformer(str(tmp_path / "st"), device="cpu").encode(texts)
    ours = embed_texts(model, BertTokenizer(VOCAB), texts, 24)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def write_st(tmp_path, modules, pooling):
    model = tiny_embedder()
    export_hf(model, tmp_path / "st", vocab=VOCAB)
    (tmp_path / "st" / "modules.json").write_text(json.dumps(modules))
    (tmp_path / "st" / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return str(tmp_path / "st")


TRANSFORMER = {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
POOLING = {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
DENSE = {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}


@pytest.mark.parametrize("modules, pooling, message", [
    ([TRANSFORMER, POOLING, DENSE], {"pooling_mode_mean_tokens": True},
     r"modules.json: module 2 is 'sentence_transformers.models.Dense'; kbert imports Transformer, Pooling"),
    ([TRANSFORMER, POOLING], {"pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True},
     r"1_Pooling/config.json: expected exactly one of .* true, got 2"),
    ([TRANSFORMER, POOLING], {"pooling_mode_weightedmean_tokens": True},
     r"1_Pooling/config.json: pooling_mode_weightedmean_tokens is true"),
    ([TRANSFORMER, POOLING], {"pooling_mode_cls_token": True, "word_embedding_dimension": 99},
     r"1_Pooling/config.json: word_embedding_dimension is 99, the model's hidden_size 16"),
    ([POOLING, TRANSFORMER], {"pooling_mode_mean_tokens": True}, r"modules.json: modules are \['Pooling'"),
])
def test_what_kbert_cannot_import_is_one_error(tmp_path, modules, pooling, message):
    directory = write_st(tmp_path, modules, pooling)
    with pytest.raises(ConfigError, match=message):
        load_hf(directory)
    assert os.path.isdir(directory)
