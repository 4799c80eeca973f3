"""`predict_arrays`: the prediction path of `Task.evaluate`, `kbert.predict`,
the fine-tuning evaluator and the export checks."""

import keras
import numpy as np
import pytest

from conftest import random_inputs
from kbert.config import BertConfig
from kbert.tasks.base import LENGTH_STEP, predict_arrays

CONFIG = BertConfig(vocab_size=60, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                    max_position_embeddings=64)


@pytest.fixture(scope="module")
def models():
    from kbert.models import BertClassifier, BertEncoder, BertQuestionAnswerer, BertTagger

    keras.utils.set_random_seed(0)
    encoder = BertEncoder(CONFIG)
    return {"classify": BertClassifier(encoder, num_classes=3), "ner": BertTagger(encoder, num_labels=5),
            "qa": BertQuestionAnswerer(encoder)}


def inputs(n=21, seq_len=40, seed=0):
    """`n` rows of 2 to `seq_len` real tokens."""
    lengths = np.random.default_rng(seed).integers(2, seq_len + 1, n).tolist()
    return random_inputs(CONFIG, batch=n, seq_len=seq_len, lengths=lengths, seed=seed)


def as_dict(outputs):
    return outputs if isinstance(outputs, dict) else {None: outputs}


@pytest.mark.parametrize("name", ["classify", "ner", "qa"])
def test_outputs_are_model_predicts_and_the_function_is_traced_once(models, name):
    model = models[name]
    x = inputs()
    expected = as_dict(model.predict(x, batch_size=8, verbose=0))
    model.predict_function = None  # a fresh compiled function, to count its traces
    for _ in range(2):
        got = as_dict(predict_arrays(model, x, 8))  # 21 rows: batches of 8, 8 and 5 (filled up to 8)
        assert got.keys() == expected.keys()
        for k in expected:
            assert got[k].shape == expected[k].shape
            np.testing.assert_allclose(got[k], expected[k], atol=1e-6)
    assert model.predict_function.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("name", ["classify", "ner", "qa"])
def test_trimmed_batches_give_the_same_outputs_at_real_tokens(models, name):
    model = models[name]
    x = inputs(seed=1)
    full = as_dict(predict_arrays(model, x, 8))
    trimmed = as_dict(predict_arrays(model, x, 8, trim=True))
    real = x["padding_mask"].astype(bool)
    for k, v in full.items():
        assert trimmed[k].shape == v.shape
        if name == "classify":  # one row of logits per example
            np.testing.assert_allclose(trimmed[k], v, atol=1e-5)
        else:  # per token: the real tokens agree
            np.testing.assert_allclose(trimmed[k][real], v[real], atol=1e-5)


def test_trimmed_batches_are_cut_to_their_longest_row(models, monkeypatch):
    model = models["classify"]
    x = inputs(n=24, seed=2)
    lengths = x["padding_mask"].sum(axis=1)
    seen = []
    call = model.predict_on_batch
    monkeypatch.setattr(model, "predict_on_batch", lambda batch: seen.append(batch["padding_mask"]) or call(batch))
    predict_arrays(model, x, 8, trim=True)
    assert sum(len(b) for b in seen) == 24
    # Rows go longest first; each batch is as long as its longest row, rounded up to LENGTH_STEP.
    for mask in seen:
        longest = int(mask.sum(axis=1).max())
        assert mask.shape[1] == min(40, -(-longest // LENGTH_STEP) * LENGTH_STEP)
    assert seen[0].shape[1] == min(40, -(-int(lengths.max()) // LENGTH_STEP) * LENGTH_STEP)
    assert seen[-1].shape[1] < seen[0].shape[1]


def test_fewer_rows_than_a_batch_and_no_rows(models):
    model = models["qa"]
    x = inputs(n=3)
    got = predict_arrays(model, x, 32)
    assert {k: v.shape for k, v in got.items()} == {"start_logits": (3, 40), "end_logits": (3, 40)}
    empty = predict_arrays(model, {k: v[:0] for k, v in x.items()}, 32, trim=True)
    assert {k: v.shape for k, v in empty.items()} == {"start_logits": (0, 40), "end_logits": (0, 40)}
