import json
import os

import keras
import numpy as np
import pytest

from conftest import random_inputs
from kbert.errors import ConfigError, DataError
from kbert.model_dir import load_model, read_model_dir, save_model
from kbert.models import BertClassifier, BertEncoder, BertTagger
from kbert.tokenization import SPECIAL_TOKENS


def vocab_for(config):
    return list(SPECIAL_TOKENS) + [f"w{i}" for i in range(config.vocab_size - len(SPECIAL_TOKENS))]


@pytest.fixture
def classifier(tiny_config):
    keras.utils.set_random_seed(0)
    return BertClassifier(BertEncoder(tiny_config), 2)


def test_save_then_load_gives_identical_outputs(tmp_path, classifier, tiny_config):
    path = tmp_path / "run"
    info = save_model(
        classifier, path, vocab=vocab_for(tiny_config), labels=["neg", "pos"], seq_len=16,
        metrics={"accuracy": 0.5},
    )
    assert sorted(os.listdir(path)) == [".kbert.json", "config.json", "metrics.json", "model.keras", "vocab.txt"]
    assert info.task == "classify" and info.labels == ["neg", "pos"] and info.seq_len == 16
    assert info.config == tiny_config and info.metrics == {"accuracy": 0.5}
    manifest = json.loads((path / "config.json").read_text())
    assert manifest["bert"]["hidden_size"] == 16 and manifest["lowercase"] is True
    x = random_inputs(tiny_config)
    loaded = load_model(path)
    np.testing.assert_array_equal(np.asarray(classifier(x)), np.asarray(loaded(x)))


def test_vocab_size_mismatch_is_refused_and_nothing_written(tmp_path, classifier, tiny_config):
    with pytest.raises(ConfigError, match="vocab_size"):
        save_model(
            classifier, tmp_path / "run", vocab=vocab_for(tiny_config)[:-1], labels=["a", "b"], seq_len=16
        )
    assert not (tmp_path / "run").exists()


def test_label_count_and_seq_len_checked(tmp_path, classifier, tiny_config):
    with pytest.raises(ConfigError, match="labels"):
        save_model(classifier, tmp_path / "a", vocab=vocab_for(tiny_config), labels=["x"], seq_len=16)
    with pytest.raises(ConfigError, match="seq_len"):
        save_model(classifier, tmp_path / "b", vocab=vocab_for(tiny_config), labels=["a", "b"], seq_len=999)
    assert os.listdir(tmp_path) == []


def test_errors_name_file_and_field(tmp_path, classifier, tiny_config):
    path = tmp_path / "run"
    save_model(classifier, path, vocab=vocab_for(tiny_config), labels=["a", "b"], seq_len=16)
    config_file = path / "config.json"
    manifest = json.loads(config_file.read_text())

    config_file.write_text(json.dumps({k: v for k, v in manifest.items() if k != "seq_len"}))
    with pytest.raises(DataError, match=r"config\.json: missing field 'seq_len'"):
        read_model_dir(path)

    config_file.write_text(json.dumps(dict(manifest, bert=dict(manifest["bert"], vocab_size=61))))
    with pytest.raises(ConfigError, match=r"vocab\.txt: 60 tokens .* vocab_size 61"):
        read_model_dir(path)

    config_file.write_text(json.dumps(dict(manifest, task="translate")))
    with pytest.raises(DataError, match="task"):
        read_model_dir(path)

    # model.keras that does not match config.json (config/weights mismatch)
    config_file.write_text(json.dumps(dict(manifest, bert=dict(manifest["bert"], num_layers=3))))
    with pytest.raises(ConfigError, match="architecture differs"):
        load_model(path)

    config_file.write_text(json.dumps(manifest))
    (path / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"model\.keras: cannot load"):
        load_model(path)

    with pytest.raises(DataError, match="model directory not found"):
        read_model_dir(tmp_path / "missing")


def test_tagger_and_encoder_dirs(tmp_path, tiny_config):
    encoder = BertEncoder(tiny_config)
    save_model(encoder, tmp_path / "enc", vocab=vocab_for(tiny_config), seq_len=16)
    assert read_model_dir(tmp_path / "enc").task == "encoder"
    tagger = BertTagger(encoder, 3)
    save_model(tagger, tmp_path / "ner", vocab=vocab_for(tiny_config), labels=["O", "B-PER", "I-PER"], seq_len=16)
    assert type(load_model(tmp_path / "ner")) is BertTagger


def _weight_entries(path):
    """Top-level groups and byte size of the weights inside a .keras file."""
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
        sizes = {}
        for group in weights:
            datasets = []
            weights[group].visititems(lambda _, item: datasets.append(item))
            sizes[group] = sum(d.nbytes for d in datasets if isinstance(d, h5py.Dataset))
    return config, sizes


def test_trained_model_is_saved_without_optimizer_state(tmp_path, classifier, tiny_config):
    x = random_inputs(tiny_config)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    classifier.compile(keras.optimizers.AdamW(1e-2), loss)
    classifier.fit(x, np.array([0, 1, 1]), epochs=2, verbose=0)
    # What Keras itself writes for a compiled model: the AdamW slots are twice the weights.
    classifier.save(tmp_path / "keras.keras")
    keras_config, keras_sizes = _weight_entries(tmp_path / "keras.keras")
    assert "compile_config" in keras_config and keras_sizes["optimizer"] > 2 * keras_sizes["layers"]

    save_model(classifier, tmp_path / "run", vocab=vocab_for(tiny_config), labels=["a", "b"], seq_len=16)
    config, sizes = _weight_entries(tmp_path / "run" / "model.keras")
    assert not config.get("compile_config")  # {} when uncompiled
    assert "optimizer" not in sizes and sizes["layers"] == keras_sizes["layers"]
    weight_bytes = sum(np.asarray(w).nbytes for w in classifier.get_weights())
    assert sum(sizes.values()) == weight_bytes
    assert (tmp_path / "run" / "model.keras").stat().st_size < (tmp_path / "keras.keras").stat().st_size

    # The trained model itself is untouched and still compiled; the saved one loads
    # with safe_mode and gives identical outputs.
    assert classifier.compiled and classifier.optimizer.iterations.numpy() == 2
    loaded = load_model(tmp_path / "run")
    assert not loaded.compiled
    np.testing.assert_array_equal(np.asarray(classifier(x)), np.asarray(loaded(x)))
