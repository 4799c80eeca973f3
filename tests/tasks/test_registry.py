"""The task registry: one row per task, and every row works end to end
(build, save/load, checkpoint names, HF export/import, serving module)."""

import keras
import numpy as np
import pytest
from conftest import random_inputs

from kbert.checkpoints import export_hf, load_hf, weight_map
from kbert.errors import DataError, KbertError
from kbert.model_dir import load_model, read_model_dir, save_model
from kbert.tasks import TASKS, registry
from kbert.tokenization import SPECIAL_TOKENS


def vocab_for(config):
    return list(SPECIAL_TOKENS) + [f"w{i}" for i in range(config.vocab_size - len(SPECIAL_TOKENS))]


def build(name, config, num_labels=3, **options):
    keras.utils.set_random_seed(0)
    return registry.build(name, config, num_labels=num_labels, **options)


def labels_for(model):
    count = registry.spec_of(model).label_count(model)
    return [f"L{i}" for i in range(count)] if count else []


def outputs(model, config):
    x = random_inputs(config, lengths=[10, 6, 3])
    if "mask_positions" in model.input:
        x["mask_positions"] = np.array([[1, 2], [3, 0], [1, 0]], "int32")
    return keras.tree.flatten(keras.tree.map_structure(np.asarray, model(x, training=False)))


def test_the_table_is_consistent():
    assert registry.NAMES == ("encoder", "pretrain", "classify", "ner", "qa", "embed")
    assert TASKS == {name: registry.spec(name).task for name in ("classify", "ner", "qa", "embed")}
    for name in registry.NAMES:
        spec = registry.spec(name)
        assert spec.name == name and spec.hf_architectures
        assert all(registry.HF_ARCHITECTURES[a.name] is a and a.task == name for a in spec.hf_architectures)
        assert spec.serving_module().serving_default  # every task serves
    assert sorted(registry.HF_ARCHITECTURES) == sorted(a.name for s in registry.REGISTRY.values()
                                                       for a in s.hf_architectures)
    with pytest.raises(KbertError, match="expected one of"):
        registry.spec("translate")
    with pytest.raises(TypeError, match="not a kbert model"):
        registry.spec_of(keras.Sequential())


ROWS = [("encoder", {}), ("pretrain", {}), ("pretrain", {"next_sentence": False}), ("classify", {}),
        ("classify", {"num_labels": 1}), ("ner", {}), ("qa", {}), ("embed", {}),
        ("embed", {"pooling": "cls", "normalize": False})]


@pytest.mark.parametrize("name, options", ROWS)
def test_every_task_round_trips_model_dir_and_hf(tmp_path, tiny_config, name, options):
    model = build(name, tiny_config, **options)
    spec = registry.spec_of(model)
    assert spec.name == name and registry.task_of(model) == name
    assert spec.encoder(model).config == tiny_config
    # The name map covers every variable of the model exactly once.
    entries = weight_map(model)
    assert sorted(id(e.variable) for e in entries) == sorted(id(w) for w in model.weights)
    assert len({e.hf for e in entries}) == len(entries)

    labels = labels_for(model)
    info = save_model(model, tmp_path / "dir", vocab=vocab_for(tiny_config), labels=labels, seq_len=16)
    assert info.task == name and info.labels == labels
    loaded = load_model(info.path)
    assert type(loaded) is type(model)
    for a, b in zip(outputs(model, tiny_config), outputs(loaded, tiny_config)):
        np.testing.assert_array_equal(a, b)

    export_hf(model, tmp_path / "hf", vocab=vocab_for(tiny_config), labels=labels)
    again, hf_info = load_hf(str(tmp_path / "hf"))
    assert hf_info["task"] == name and type(again) is type(model) and hf_info["labels"] == labels
    assert registry.spec_of(again).hf_architecture(again) == spec.hf_architecture(model)
    names = {e.hf for e in weight_map(again, with_pooler=spec.hf_architecture(model).with_pooler)}
    for e in weight_map(model, with_pooler=spec.hf_architecture(model).with_pooler):
        assert e.hf in names
    ours = {e.hf: e.variable.numpy() for e in weight_map(again)}
    for e in weight_map(model, with_pooler=spec.hf_architecture(model).with_pooler):
        np.testing.assert_array_equal(ours[e.hf], e.variable.numpy())


def test_label_counts_are_checked_by_save_model(tmp_path, tiny_config):
    from kbert.errors import ConfigError

    tagger = build("ner", tiny_config, num_labels=3)
    with pytest.raises(ConfigError, match="labels: 2 names given but the model has 3 outputs"):
        save_model(tagger, tmp_path / "a", vocab=vocab_for(tiny_config), labels=["a", "b"], seq_len=16)
    regressor = build("classify", tiny_config, num_labels=1)
    save_model(regressor, tmp_path / "b", vocab=vocab_for(tiny_config), seq_len=16)  # no label name needed
    qa = build("qa", tiny_config)
    assert registry.spec_of(qa).label_counts(qa) is None


def test_task_options_are_saved_and_checked(tmp_path, tiny_config):
    qa = build("qa", tiny_config)
    task = registry.get_task("qa", doc_stride=7, max_answer_length=9, version_2=True)
    info = save_model(qa, tmp_path / "qa", vocab=vocab_for(tiny_config), seq_len=16, task_options=task.options())
    assert info.task_options == {"doc_stride": 7, "max_query_length": 64, "max_answer_length": 9, "n_best": 20,
                                 "null_threshold": 0.0, "version_2": True}
    again = registry.model_dir_task(read_model_dir(tmp_path / "qa"), n_best=3)
    assert (again.doc_stride, again.max_answer_length, again.version_2, again.n_best) == (7, 9, True, 3)
    config = tmp_path / "qa" / "config.json"
    config.write_text(config.read_text().replace('"n_best"', '"n_worst"'))
    with pytest.raises(DataError, match="task_options.*'n_worst'"):
        registry.model_dir_task(read_model_dir(tmp_path / "qa"))
    encoder = build("encoder", tiny_config)
    save_model(encoder, tmp_path / "enc", vocab=vocab_for(tiny_config), seq_len=16)
    with pytest.raises(KbertError, match="encoder model directory"):
        registry.model_dir_task(read_model_dir(tmp_path / "enc"))
