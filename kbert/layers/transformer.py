"""BERT's post-LayerNorm Transformer block and the [CLS] pooler.

Written here rather than reusing `keras_hub.layers.TransformerEncoder` because
(1) BERT checkpoints store query/key/value/output as plain `[hidden, hidden]`
matrices and this layout keeps import/export a transpose-free copy, (2) the exact
GELU must be the erf form that tf2onnx converts, and (3) the attention mask must be
built with `expand_dims` (a `[:, None, :]` slice becomes a StridedSlice that TFLite
rejects), with the softmax in float32 so mixed precision cannot overflow the mask.
"""

import math

import keras
from keras import ops

from kbert.layers import activations

# How attention ignores padded keys. Two measured constraints:
# - No float32 subnormal may reach the softmax or come out of it. A bias of -100 gave
#   padded keys exp(-100) ~ 4e-44, a subnormal; runtimes that do not flush them to zero
#   (onnxruntime on its calling thread, plain C) ran MiniLM 4x slower on padded rows
#   on a CPU with slow subnormal arithmetic (99 vs 24 ms a row).
# - Full-int8 TFLite calibrates every tensor's range: a huge bias (-1e9, -1e4) stretched
#   it until the real scores rounded to one value (SST-2 MiniLM 84.5 -> 55.5), and a floor
#   applied after the -100 bias (one tensor spanning both) cost 1.2 points.
# So `mask_scores` floors each row at its largest real score minus _SCORE_RANGE and puts
# padded keys exactly on that floor: every exp in the softmax is at least exp(-30) ~ 9e-14
# of the largest (a normal float), a padded key weighs ~9e-14 (below float32 resolution
# next to the real keys), and the softmax input spans the real scores' range only.
# _MASK_BIAS only keeps padded keys out of the row maximum that sets the floor.
# benchmarks/README.md ("ONNX") has the figures.
_MASK_BIAS = -100.0
_SCORE_RANGE = 30.0


def mask_scores(scores, padding_mask=None):
    """Attention logits ready for the softmax: padded keys masked, each row's range bounded.

    Args:
        scores: float32 `[batch, heads, queries, keys]`.
        padding_mask: optional int/bool `[batch, keys]`, 1 for real tokens.

    Returns:
        `scores` floored at each row's largest real score minus `_SCORE_RANGE`,
        with padded keys on that floor. The floor is a constant for the gradient.
    """
    if padding_mask is None:
        floor = ops.stop_gradient(ops.max(scores, axis=-1, keepdims=True)) - _SCORE_RANGE
        return ops.maximum(scores, floor)
    mask = ops.expand_dims(ops.expand_dims(padding_mask, 1), 1)  # [batch, 1, 1, keys]
    biased = scores + (1.0 - ops.cast(mask, "float32")) * _MASK_BIAS
    floor = ops.stop_gradient(ops.max(biased, axis=-1, keepdims=True)) - _SCORE_RANGE
    return ops.maximum(ops.where(ops.cast(mask, "bool"), scores, floor), floor)


@keras.saving.register_keras_serializable(package="kbert")
class TransformerBlock(keras.layers.Layer):
    """Multi-head self-attention and feed-forward, each followed by Add & LayerNorm.

    Args:
        hidden_size: model width.
        num_heads: attention heads; must divide `hidden_size`.
        intermediate_size: feed-forward width.
        hidden_act: feed-forward activation name (see `kbert.layers.activations`).
        hidden_dropout: dropout on each residual branch.
        attention_dropout: dropout on attention probabilities.
        layer_norm_eps: LayerNorm epsilon.
        initializer_range: stddev of the truncated-normal kernel initializer.

    Call arguments:
        x: float tensor `[batch, seq_len, hidden_size]`.
        padding_mask: optional int/bool tensor `[batch, seq_len]`, 1 for real tokens.
            Padded positions are never attended to.

    Examples:
    ```python
    block = TransformerBlock(hidden_size=64, num_heads=4, intermediate_size=256)
    y = block(np.zeros((2, 8, 64), "float32"), padding_mask=np.ones((2, 8), "int32"))
    ```
    """

    def __init__(
        self,
        hidden_size,
        num_heads,
        intermediate_size,
        hidden_act="gelu",
        hidden_dropout=0.1,
        attention_dropout=0.1,
        layer_norm_eps=1e-12,
        initializer_range=0.02,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout = hidden_dropout
        self.attention_dropout = attention_dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.activation = activations.get(hidden_act)

        def dense(units, name):
            return keras.layers.Dense(
                units,
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
                dtype=self.dtype_policy,
                name=name,
            )

        def norm(name):
            return keras.layers.LayerNormalization(
                epsilon=layer_norm_eps, dtype=self.dtype_policy, name=name
            )

        self.query = dense(hidden_size, "query")
        self.key = dense(hidden_size, "key")
        self.value = dense(hidden_size, "value")
        self.attention_output = dense(hidden_size, "attention_output")
        self.attention_norm = norm("attention_norm")
        self.intermediate = dense(intermediate_size, "intermediate")
        self.output_dense = dense(hidden_size, "output")
        self.output_norm = norm("output_norm")
        self.attention_probs_dropout = keras.layers.Dropout(attention_dropout, dtype=self.dtype_policy)
        self.attention_output_dropout = keras.layers.Dropout(hidden_dropout, dtype=self.dtype_policy)
        self.output_dropout = keras.layers.Dropout(hidden_dropout, dtype=self.dtype_policy)

    def build(self, x_shape, padding_mask_shape=None):
        hidden_shape = (None, None, self.hidden_size)
        for layer in (self.query, self.key, self.value, self.attention_output, self.intermediate):
            layer.build(hidden_shape)
        self.output_dense.build((None, None, self.intermediate_size))
        self.attention_norm.build(hidden_shape)
        self.output_norm.build(hidden_shape)

    def _split_heads(self, x, batch, seq_len):
        x = ops.reshape(x, (batch, seq_len, self.num_heads, self.head_size))
        return ops.transpose(x, (0, 2, 1, 3))

    def call(self, x, padding_mask=None, training=None):
        batch, seq_len = ops.shape(x)[0], ops.shape(x)[1]
        q = self._split_heads(self.query(x), batch, seq_len)
        k = self._split_heads(self.key(x), batch, seq_len)
        v = self._split_heads(self.value(x), batch, seq_len)

        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))
        scores = ops.cast(scores, "float32") * (1.0 / math.sqrt(self.head_size))
        scores = mask_scores(scores, padding_mask)
        probs = ops.cast(ops.softmax(scores, axis=-1), self.compute_dtype)
        probs = self.attention_probs_dropout(probs, training=training)

        context = ops.matmul(probs, v)
        context = ops.reshape(ops.transpose(context, (0, 2, 1, 3)), (batch, seq_len, self.hidden_size))
        attention = self.attention_output_dropout(self.attention_output(context), training=training)
        x = self.attention_norm(x + attention)

        h = self.output_dense(self.activation(self.intermediate(x)))
        h = self.output_dropout(h, training=training)
        return self.output_norm(x + h)

    def compute_output_shape(self, x_shape, padding_mask_shape=None):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size,
            num_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act,
            hidden_dropout=self.hidden_dropout,
            attention_dropout=self.attention_dropout,
            layer_norm_eps=self.layer_norm_eps,
            initializer_range=self.initializer_range,
        )
        return config


@keras.saving.register_keras_serializable(package="kbert")
class BertPooler(keras.layers.Layer):
    """Dense + tanh on the first ([CLS]) token: BERT's `pooled_output`.

    Args:
        hidden_size: output width (equal to the encoder width).
        initializer_range: stddev of the truncated-normal kernel initializer.
    """

    def __init__(self, hidden_size, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(
            hidden_size,
            activation="tanh",
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=initializer_range),
            dtype=self.dtype_policy,
            name="dense",
        )

    def build(self, input_shape):
        self.dense.build((None, input_shape[-1]))

    def call(self, sequence_output):
        return self.dense(sequence_output[:, 0, :])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.hidden_size)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_size=self.hidden_size, initializer_range=self.initializer_range)
        return config
