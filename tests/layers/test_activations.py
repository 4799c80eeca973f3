import math

import numpy as np
import pytest

from kbert.layers import activations


def test_exact_gelu_matches_erf_formula():
    x = np.linspace(-6, 6, 101).astype("float32")
    expected = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    np.testing.assert_allclose(np.asarray(activations.gelu(x)), expected, atol=1e-6)


def test_approximate_gelu_differs_from_exact_but_is_close():
    x = np.linspace(-4, 4, 81).astype("float32")
    diff = np.abs(np.asarray(activations.gelu(x)) - np.asarray(activations.gelu_approximate(x)))
    assert 1e-5 < diff.max() < 1e-2


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown activation"):
        activations.get("gelu_fancy")
