"""Activations written so that every exporter keeps them.

`keras.activations.gelu(approximate=False)` lowers to `Erfc`, which tf2onnx cannot
convert; the erf form below converts to ONNX and TFLite still fuses it into one
GELU op. Functions are registered so `.keras` files load them under safe_mode.
"""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kbert")
def gelu(x):
    """Exact GELU, `0.5 * x * (1 + erf(x / sqrt(2)))` (BERT's and HF's "gelu")."""
    return 0.5 * x * (1.0 + ops.erf(x * (1.0 / math.sqrt(2.0))))


@keras.saving.register_keras_serializable(package="kbert")
def gelu_approximate(x):
    """Tanh approximation of GELU (HF's "gelu_new")."""
    return keras.activations.gelu(x, approximate=True)


_BY_NAME = {
    "gelu": gelu,
    "gelu_approximate": gelu_approximate,
    "relu": keras.activations.relu,
    "silu": keras.activations.silu,
    "tanh": keras.activations.tanh,
}


def get(name):
    """The activation function for a `BertConfig.hidden_act` name."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(_BY_NAME)}") from None
