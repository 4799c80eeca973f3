import json

import pytest

from kbert.config import PRESETS, BertConfig
from kbert.errors import ConfigError

GOOGLE_BASE = {
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "type_vocab_size": 2,
    "vocab_size": 30522,
}


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_have_published_sizes(name):
    layers, hidden, heads = PRESETS[name]
    config = BertConfig.preset(name)
    assert (config.num_layers, config.hidden_size, config.num_heads) == (layers, hidden, heads)
    assert config.intermediate_size == 4 * hidden


def test_preset_sizes():
    assert PRESETS["tiny"] == (2, 128, 2)
    assert PRESETS["mini"] == (4, 256, 4)
    assert PRESETS["small"] == (4, 512, 8)
    assert PRESETS["medium"] == (8, 512, 8)
    assert PRESETS["base"] == (12, 768, 12)
    assert PRESETS["large"] == (24, 1024, 16)


def test_preset_overrides_and_unknown_name():
    assert BertConfig.preset("tiny", vocab_size=8000).vocab_size == 8000
    with pytest.raises(ConfigError, match="preset"):
        BertConfig.preset("huge")


def test_json_round_trip(tmp_path):
    config = BertConfig.preset("mini", vocab_size=1234, hidden_dropout=0.2)
    path = tmp_path / "config.json"
    config.to_json(path)
    assert BertConfig.from_json(path) == config


def test_reads_google_bert_config(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(GOOGLE_BASE))
    config = BertConfig.from_json(path)
    assert config == BertConfig.preset("base")
    assert config.layer_norm_eps == 1e-12


def test_reads_hf_config_and_aliases(tmp_path):
    hf = dict(GOOGLE_BASE, model_type="bert", layer_norm_eps=1e-7, hidden_act="gelu_new",
              architectures=["BertModel"], position_embedding_type="absolute")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(hf))
    config = BertConfig.from_json(path)
    assert config.layer_norm_eps == 1e-7
    assert config.hidden_act == "gelu_approximate"


@pytest.mark.parametrize("flavor", ["google", "hf"])
def test_external_round_trip(tmp_path, flavor):
    config = BertConfig.preset("small", vocab_size=999)
    path = tmp_path / "c.json"
    config.to_json(path, flavor=flavor)
    written = json.loads(path.read_text())
    assert written["num_hidden_layers"] == 4
    assert BertConfig.from_json(path) == config


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"hidden_size": 100, "num_heads": 3}, "hidden_size"),
        ({"hidden_act": "swishy"}, "hidden_act"),
        ({"num_layers": 0}, "num_layers"),
        ({"vocab_size": 3.5}, "vocab_size"),
        ({"hidden_dropout": 1.5}, "hidden_dropout"),
        ({"layer_norm_eps": 0}, "layer_norm_eps"),
    ],
)
def test_rejects_inconsistent_values(overrides, field):
    with pytest.raises(ConfigError, match=field):
        BertConfig(**overrides)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bert_config.json"
    bad.write_text(json.dumps(dict(GOOGLE_BASE, num_attention_heads=7)))
    with pytest.raises(ConfigError, match=r"bert_config\.json: hidden_size"):
        BertConfig.from_json(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{\n  \"vocab_size\": ,\n}")
    with pytest.raises(Exception, match=r"broken\.json:2: invalid JSON"):
        BertConfig.from_json(broken)
    relative = tmp_path / "rel.json"
    relative.write_text(json.dumps(dict(GOOGLE_BASE, position_embedding_type="relative_key")))
    with pytest.raises(ConfigError, match="position_embedding_type"):
        BertConfig.from_json(relative)
