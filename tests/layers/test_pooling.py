"""TokenPooling: sentence-transformers' pooling arithmetic, padding ignored."""

import keras
import numpy as np
import pytest

from kbert.layers import POOLING_MODES, TokenPooling


def reference(x, mask, mode, normalize):
    m = mask[..., None].astype(np.float64)
    x = x.astype(np.float64)
    if mode == "cls":
        out = x[:, 0]
    elif mode == "max":
        out = np.where(m > 0, x, -1e9).max(axis=1)
    else:
        count = np.maximum(m.sum(axis=1), 1e-9)
        out = (x * m).sum(axis=1) / (count if mode == "mean" else np.sqrt(count))
    if normalize:
        out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


@pytest.mark.parametrize("mode", POOLING_MODES)
@pytest.mark.parametrize("normalize", [False, True])
def test_pooling_matches_the_reference_and_ignores_padding(mode, normalize):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6, 4)).astype("float32")
    mask = np.array([[1] * 6, [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], "int32")
    layer = TokenPooling(mode, normalize=normalize)
    out = np.asarray(layer(x, mask))
    np.testing.assert_allclose(out, reference(x, mask, mode, normalize), rtol=1e-5, atol=1e-6)
    # What the padding holds changes nothing.
    noisy = x + (1 - mask[..., None]) * 100.0
    np.testing.assert_allclose(np.asarray(layer(noisy, mask)), out, rtol=1e-5, atol=1e-6)
    assert out.dtype == np.float32
    again = TokenPooling.from_config(layer.get_config())
    assert (again.mode, again.normalize) == (mode, normalize)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="pooling: expected one of"):
        TokenPooling("weightedmean")


def test_pooling_is_float32_under_mixed_precision():
    layer = TokenPooling("mean", normalize=True, dtype=keras.DTypePolicy("mixed_bfloat16"))
    out = layer(np.ones((2, 3, 4), "float32"), np.ones((2, 3), "int32"))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
