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
