import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import random_inputs
from kbert.config import BertConfig
from kbert.models import (
    BertClassifier,
    BertEncoder,
    BertPretrainer,
    BertQuestionAnswerer,
    BertTagger,
    task_of,
)


@pytest.fixture
def encoder(tiny_config):
    keras.utils.set_random_seed(0)
    return BertEncoder(tiny_config)


def predict(model, x):
    return keras.tree.map_structure(np.asarray, model(x, training=False))


def test_encoder_outputs_and_parameter_count(encoder, tiny_config):
    out = predict(encoder, random_inputs(tiny_config))
    assert out["sequence_output"].shape == (3, 10, 16)
    assert out["pooled_output"].shape == (3, 16)
    c = tiny_config
    h, i = c.hidden_size, c.intermediate_size
    per_layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 4 * h
    embeddings = (c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * h + 2 * h
    assert encoder.count_params() == embeddings + c.num_layers * per_layer + h * h + h


def test_base_preset_has_bert_base_size():
    encoder = BertEncoder(BertConfig.preset("base"))
    assert encoder.count_params() == 109_482_240  # BERT-base uncased, pooler included


def test_padding_never_changes_real_positions(encoder, tiny_config):
    x = random_inputs(tiny_config, lengths=[10, 6, 3])
    base = predict(encoder, x)
    y = {k: v.copy() for k, v in x.items()}
    pad = x["padding_mask"] == 0
    y["token_ids"][pad] = 7
    y["segment_ids"][pad] = 1
    changed = predict(encoder, y)
    real = x["padding_mask"].astype(bool)
    np.testing.assert_array_equal(base["sequence_output"][real], changed["sequence_output"][real])
    np.testing.assert_array_equal(base["pooled_output"], changed["pooled_output"])


def test_padded_batch_equals_unpadded_single(encoder, tiny_config):
    x = random_inputs(tiny_config, lengths=[10, 6, 3])
    batch = predict(encoder, x)
    alone = predict(encoder, {k: v[1:2, :6] for k, v in x.items()})
    np.testing.assert_allclose(batch["sequence_output"][1, :6], alone["sequence_output"][0], atol=1e-5)
    np.testing.assert_allclose(batch["pooled_output"][1], alone["pooled_output"][0], atol=1e-5)


def test_task_output_shapes(encoder, tiny_config):
    x = random_inputs(tiny_config)
    assert predict(BertClassifier(encoder, 3), x).shape == (3, 3)
    assert predict(BertClassifier(encoder, 1), x).shape == (3, 1)
    assert predict(BertTagger(encoder, 9), x).shape == (3, 10, 9)
    qa = predict(BertQuestionAnswerer(encoder), x)
    assert qa["start_logits"].shape == qa["end_logits"].shape == (3, 10)
    pt = predict(BertPretrainer(encoder), dict(x, mask_positions=np.zeros((3, 4), "int32")))
    assert pt["mlm"].shape == (3, 4, tiny_config.vocab_size) and pt["nsp"].shape == (3, 2)
    mlm_only = BertPretrainer(encoder, next_sentence=False)
    assert set(predict(mlm_only, dict(x, mask_positions=np.zeros((3, 4), "int32")))) == {"mlm"}


def test_pretrainer_shares_encoder_embedding(encoder):
    pretrainer = BertPretrainer(encoder)
    assert pretrainer.mlm_head.token_embedding is encoder.token_embedding
    own = {id(w) for w in pretrainer.weights}
    assert len(own) == len(pretrainer.weights)


@pytest.mark.parametrize("task", ["encoder", "pretrain", "classify", "ner", "qa"])
def test_keras_save_load_identical(tmp_path, encoder, tiny_config, task):
    model = {
        "encoder": lambda: encoder,
        "pretrain": lambda: BertPretrainer(encoder),
        "classify": lambda: BertClassifier(encoder, 4),
        "ner": lambda: BertTagger(encoder, 5),
        "qa": lambda: BertQuestionAnswerer(encoder),
    }[task]()
    x = random_inputs(tiny_config, lengths=[10, 6, 3])
    if task == "pretrain":
        x["mask_positions"] = np.array([[1, 2], [3, 0], [1, 0]], "int32")
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is type(model) and task_of(loaded) == task
    for a, b in zip(keras.tree.flatten(predict(model, x)), keras.tree.flatten(predict(loaded, x))):
        np.testing.assert_array_equal(a, b)


def _dataset(config, n=32, seq_len=8, seed=0):
    """Label 1 when token 5 occurs in the sequence: learnable by attention."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(6, config.vocab_size, (n, seq_len)).astype("int32")
    labels = rng.integers(0, 2, n).astype("int32")
    ids[labels == 1, rng.integers(1, seq_len, int(labels.sum()))] = 5
    x = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)}
    return tf.data.Dataset.from_tensor_slices((x, labels)).shuffle(n, seed=seed).batch(8)


def test_classifier_fits_on_tf_data(encoder, tiny_config):
    model = BertClassifier(encoder, 2, dropout=0.0)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    ds = _dataset(tiny_config)
    before = model.evaluate(ds, verbose=0, return_dict=True)
    model.fit(ds, epochs=25, verbose=0)
    after = model.evaluate(ds, verbose=0, return_dict=True)
    assert after["loss"] < 0.5 * before["loss"]
    assert after["accuracy"] >= 0.9


def test_pretrainer_fits_with_masked_position_weights(encoder, tiny_config):
    rng = np.random.default_rng(0)
    n, seq_len = 16, 8
    x = random_inputs(tiny_config, batch=n, seq_len=seq_len, lengths=[seq_len] * n)
    x["mask_positions"] = np.tile(np.array([[1, 3, 0]], "int32"), (n, 1))
    y = {
        "mlm": np.take_along_axis(x["token_ids"], x["mask_positions"], axis=1),
        "nsp": rng.integers(0, 2, n).astype("int32"),
    }
    weights = {"mlm": np.tile(np.array([[1.0, 1.0, 0.0]], "float32"), (n, 1)), "nsp": np.ones(n, "float32")}
    ds = tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(8)
    model = BertPretrainer(encoder)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss={"mlm": loss, "nsp": loss})
    history = model.fit(ds, epochs=15, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


# from_pretrained: a model from a kbert model directory or a Hugging Face directory.


def _vocab(config):
    from kbert.tokenization import SPECIAL_TOKENS

    return list(SPECIAL_TOKENS) + [f"w{i}" for i in range(config.vocab_size - len(SPECIAL_TOKENS))]


def _save(model, path, config, labels=None):
    from kbert.model_dir import save_model

    save_model(model, path, vocab=_vocab(config), labels=labels, seq_len=16)
    return path


def _same_outputs(a, b, x):
    for u, v in zip(keras.tree.flatten(predict(a, x)), keras.tree.flatten(predict(b, x))):
        np.testing.assert_array_equal(u, v)


def test_from_pretrained_takes_the_encoder_of_any_task_dir(tmp_path, encoder, tiny_config):
    x = random_inputs(tiny_config)
    tagger_dir = _save(BertTagger(encoder, 3), tmp_path / "ner", tiny_config, labels=["O", "B", "I"])
    loaded = BertEncoder.from_pretrained(tagger_dir)
    assert type(loaded) is BertEncoder
    _same_outputs(encoder, loaded, x)

    enc_dir = _save(encoder, tmp_path / "enc", tiny_config)
    classifier = BertClassifier.from_pretrained(enc_dir, num_classes=3, dropout=0.2)
    assert (classifier.num_classes, classifier.dropout) == (3, 0.2)
    _same_outputs(encoder, classifier.encoder, x)
    assert predict(BertTagger.from_pretrained(enc_dir, num_labels=4), x).shape == (3, 10, 4)
    assert predict(BertQuestionAnswerer.from_pretrained(enc_dir), x)["start_logits"].shape == (3, 10)
    pretrainer = BertPretrainer.from_pretrained(tagger_dir, next_sentence=False)
    assert pretrainer.nsp_head is None
    _same_outputs(encoder, pretrainer.encoder, x)


def test_from_pretrained_returns_a_matching_task_model_as_is(tmp_path, encoder, tiny_config):
    x = random_inputs(tiny_config)
    trained = BertClassifier(encoder, 2, dropout=0.3)
    path = _save(trained, tmp_path / "cls", tiny_config, labels=["neg", "pos"])
    for kwargs in ({}, {"num_classes": 2}, {"num_classes": 2, "dropout": 0.3}):
        model = BertClassifier.from_pretrained(path, **kwargs)
        assert type(model) is BertClassifier and model.dropout == 0.3
        _same_outputs(trained, model, x)
    # Another dropout keeps the trained head's weights.
    model = BertClassifier.from_pretrained(path, dropout=0.0)
    assert model.dropout == 0.0
    _same_outputs(trained, model, x)
    # Another head size is a new head on the same encoder.
    model = BertClassifier.from_pretrained(path, num_classes=5)
    assert predict(model, x).shape == (3, 5)
    _same_outputs(encoder, model.encoder, x)

    qa = BertQuestionAnswerer(encoder)
    _same_outputs(qa, BertQuestionAnswerer.from_pretrained(_save(qa, tmp_path / "qa", tiny_config)), x)
    pretrainer = BertPretrainer(encoder)
    x_mlm = dict(x, mask_positions=np.array([[1, 2], [3, 0], [1, 0]], "int32"))
    path = _save(pretrainer, tmp_path / "pt", tiny_config)
    _same_outputs(pretrainer, BertPretrainer.from_pretrained(path), x_mlm)
    # Dropping NSP keeps the MLM head.
    mlm_only = BertPretrainer.from_pretrained(path, next_sentence=False)
    np.testing.assert_array_equal(predict(pretrainer, x_mlm)["mlm"], predict(mlm_only, x_mlm)["mlm"])


def test_from_pretrained_errors(tmp_path, encoder, tiny_config):
    from kbert.errors import ConfigError, DataError

    enc_dir = _save(encoder, tmp_path / "enc", tiny_config)
    with pytest.raises(ConfigError, match=r"holds an encoder, so BertClassifier needs a new head: pass num_classes"):
        BertClassifier.from_pretrained(enc_dir)
    qa_dir = _save(BertQuestionAnswerer(encoder), tmp_path / "qa", tiny_config)
    with pytest.raises(ConfigError, match=r"holds a BertQuestionAnswerer, so BertTagger .* num_labels"):
        BertTagger.from_pretrained(qa_dir)
    with pytest.raises(TypeError, match="num_classes"):
        BertQuestionAnswerer.from_pretrained(qa_dir, num_classes=2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither a kbert model directory"):
        BertEncoder.from_pretrained(tmp_path / "empty")
    with pytest.raises(DataError, match="directory not found"):
        BertEncoder.from_pretrained(tmp_path / "missing" / "dir")


def test_from_pretrained_imports_a_hugging_face_directory(tmp_path, encoder, tiny_config):
    from kbert.checkpoints import export_hf

    x = random_inputs(tiny_config)
    classifier = BertClassifier(encoder, 3)
    export_hf(classifier, tmp_path / "hf", vocab=_vocab(tiny_config), labels=["a", "b", "c"])
    assert not (tmp_path / "hf" / "model.keras").exists()
    _same_outputs(classifier, BertClassifier.from_pretrained(tmp_path / "hf"), x)
    _same_outputs(encoder, BertEncoder.from_pretrained(tmp_path / "hf"), x)
    tagger = BertTagger.from_pretrained(tmp_path / "hf", num_labels=2)
    assert predict(tagger, x).shape == (3, 10, 2)
    _same_outputs(encoder, tagger.encoder, x)


def test_from_pretrained_downloads_a_hub_id(tmp_path, monkeypatch, encoder, tiny_config):
    from kbert.checkpoints import export_hf

    hub = pytest.importorskip("huggingface_hub")
    export_hf(encoder, tmp_path / "hf", vocab=_vocab(tiny_config))
    requested = []

    def snapshot_download(repo_id, **kwargs):  # no network here: serve the local copy
        requested.append(repo_id)
        return str(tmp_path / "hf")

    monkeypatch.setattr(hub, "snapshot_download", snapshot_download)
    monkeypatch.chdir(tmp_path)
    model = BertClassifier.from_pretrained("someone/tiny-bert", num_classes=2)
    assert requested == ["someone/tiny-bert"]
    _same_outputs(encoder, model.encoder, random_inputs(tiny_config))
