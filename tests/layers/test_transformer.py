import numpy as np
import pytest

from kbert.layers import BertPooler, TransformerBlock


def block(**kw):
    args = dict(hidden_size=16, num_heads=4, intermediate_size=32, hidden_dropout=0.0, attention_dropout=0.0)
    args.update(kw)
    return TransformerBlock(**args)


def inputs(batch=2, seq_len=7, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, seq_len, 16)).astype("float32")


def test_shape_and_variables_match_bert_layout():
    layer = block()
    out = layer(inputs(), padding_mask=np.ones((2, 7), "int32"))
    assert out.shape == (2, 7, 16)
    # q, k, v, attention output: [hidden, hidden] + bias; FFN in/out; 2 LayerNorms
    assert layer.query.kernel.shape == (16, 16)
    assert layer.intermediate.kernel.shape == (16, 32)
    assert layer.output_dense.kernel.shape == (32, 16)
    assert len(layer.weights) == 16


def test_padded_positions_never_change_real_outputs():
    layer = block()
    x = inputs()
    mask = np.array([[1, 1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0]], "int32")
    base = np.asarray(layer(x, padding_mask=mask))
    noisy = x.copy()
    noisy[mask == 0] = np.random.default_rng(1).normal(size=(int((mask == 0).sum()), 16)) * 100
    changed = np.asarray(layer(noisy, padding_mask=mask))
    real = mask.astype(bool)
    np.testing.assert_array_equal(base[real], changed[real])


def test_padding_equals_shorter_sequence():
    layer = block()
    x = inputs(batch=1, seq_len=4)
    short = np.asarray(layer(x, padding_mask=np.ones((1, 4), "int32")))
    padded = np.concatenate([x, np.ones((1, 3, 16), "float32")], axis=1)
    long = np.asarray(layer(padded, padding_mask=np.array([[1, 1, 1, 1, 0, 0, 0]], "int32")))
    np.testing.assert_allclose(short[0], long[0, :4], atol=1e-5)


def test_without_mask_padding_leaks():
    # The test above would pass trivially if attention ignored the mask entirely
    # being absent; check the mask is what makes the difference.
    layer = block()
    x = inputs(batch=1, seq_len=4)
    short = np.asarray(layer(x))
    padded = np.concatenate([x, np.ones((1, 3, 16), "float32")], axis=1)
    long = np.asarray(layer(padded))
    assert not np.allclose(short[0], long[0, :4], atol=1e-3)


def test_fully_padded_row_is_finite():
    layer = block()
    out = np.asarray(layer(inputs(batch=1), padding_mask=np.zeros((1, 7), "int32")))
    assert np.isfinite(out).all()


def test_rejects_heads_not_dividing_hidden():
    with pytest.raises(ValueError, match="divisible"):
        TransformerBlock(hidden_size=10, num_heads=3, intermediate_size=8)


def test_config_round_trip():
    layer = block(hidden_act="relu", layer_norm_eps=1e-6)
    clone = TransformerBlock.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_pooler_uses_first_token_only():
    pooler = BertPooler(16)
    x = inputs()
    a = np.asarray(pooler(x))
    y = x.copy()
    y[:, 1:] += 5.0
    np.testing.assert_array_equal(a, np.asarray(pooler(y)))
    assert a.shape == (2, 16) and np.abs(a).max() <= 1.0


def test_masked_scores_give_a_softmax_free_of_subnormals():
    # A real key 95 below the row maximum and padded keys as high as the maximum: a plain
    # -100 bias (or no floor) puts exp(-95) and exp(-100), float32 subnormals, in the softmax.
    from kbert.layers.transformer import mask_scores

    scores = np.zeros((2, 1, 3, 6), "float32")
    scores[..., 0], scores[..., 1], scores[..., 2] = 5.0, 1.0, 5.0 - 95.0
    scores[..., 3:] = 5.0
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], "int32")
    masked = np.asarray(mask_scores(scores, mask), "float32")
    e = np.exp(masked - masked.max(-1, keepdims=True))
    probs = e / e.sum(-1, keepdims=True)
    tiny = np.finfo(np.float32).tiny
    for tensor in (masked - masked.max(-1, keepdims=True), e, probs):
        values = np.abs(tensor[tensor != 0])
        assert values.size == 0 or values.min() >= tiny
    # Padded keys get no visible weight: the real keys' softmax is the exactly masked one.
    exact = np.exp(scores[0, ..., :3] - 5.0)
    exact /= exact.sum(-1, keepdims=True)
    np.testing.assert_allclose(probs[0, ..., :3], exact, rtol=1e-6, atol=1e-12)
    assert probs[0, ..., 3:].max() < 1e-12
    # The softmax input stays within the real scores' range (what int8 calibration sees).
    assert masked.min() >= 5.0 - 30.0 - 1e-5 and masked.max() <= 5.0
