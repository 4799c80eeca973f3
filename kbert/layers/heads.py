"""Task heads on top of the encoder.

- `MaskedLMHead`: BERT's MLM transform (dense + activation + LayerNorm) and a
  decoder tied to the token embedding table, run only at the masked positions.
- `ClassificationHead`: dropout + dense; on `pooled_output` it is the sequence
  classifier/regressor (and, with 2 classes and no dropout, the NSP head); on
  `sequence_output` it is the token tagger.
- `SpanHead`: start/end logits for extractive QA.

Each head's variables match one Google/HF head (`cls/predictions/*`,
`cls/seq_relationship/*`, `classifier`, `qa_outputs`) so checkpoints map directly.
Logits are returned in float32 so losses stay stable under mixed precision.
"""

import keras
from keras import ops

from kbert.layers import activations


def _kernel_init(stddev):
    return keras.initializers.TruncatedNormal(stddev=stddev)


def _gather_positions(sequence, positions):
    """`sequence[b, positions[b, i]]` as one flat gather: its gradient is a sparse
    update, where `take_along_axis` costs a dense one several times slower."""
    batch, seq_len, hidden = ops.shape(sequence)[0], ops.shape(sequence)[1], ops.shape(sequence)[2]
    offsets = ops.expand_dims(ops.arange(batch, dtype="int32") * seq_len, -1)
    flat_index = ops.reshape(ops.cast(positions, "int32") + offsets, (-1,))
    gathered = ops.take(ops.reshape(sequence, (-1, hidden)), flat_index, axis=0)
    return ops.reshape(gathered, (batch, -1, hidden))


@keras.saving.register_keras_serializable(package="kbert")
class MaskedLMHead(keras.layers.Layer):
    """Masked-LM logits at selected positions, decoder tied to the token embeddings.

    Args:
        token_embedding: the encoder's `keras.layers.Embedding`; its table is the
            decoder (BERT ties input and output embeddings). Not serialized: the
            owning model passes it again when it is rebuilt.
        hidden_act: activation of the transform layer.
        layer_norm_eps: LayerNorm epsilon.
        initializer_range: stddev of the truncated-normal kernel initializer.

    Call arguments:
        sequence_output: float `[batch, seq_len, hidden]`.
        mask_positions: int `[batch, num_predictions]`, indices into `seq_len`.

    Returns:
        float32 logits `[batch, num_predictions, vocab_size]`.
    """

    def __init__(
        self,
        token_embedding=None,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        initializer_range=0.02,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # Bypass Keras/TF attribute tracking: the table belongs to the encoder, and
        # tracking it here too would list (and save) it under this head as well.
        object.__setattr__(self, "token_embedding", token_embedding)
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.activation = activations.get(hidden_act)
        self.dense = None
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=self.dtype_policy, name="layer_norm"
        )

    def build(self, sequence_output_shape, mask_positions_shape=None):
        if self.token_embedding is None:
            raise ValueError("MaskedLMHead needs the encoder's token_embedding layer")
        hidden = sequence_output_shape[-1]
        self.dense = keras.layers.Dense(
            hidden, kernel_initializer=_kernel_init(self.initializer_range),
            dtype=self.dtype_policy, name="dense",
        )
        self.dense.build((None, None, hidden))
        self.layer_norm.build((None, None, hidden))
        self.output_bias = self.add_weight(
            name="output_bias", shape=(self.token_embedding.input_dim,), initializer="zeros"
        )

    def call(self, sequence_output, mask_positions):
        x = _gather_positions(sequence_output, mask_positions)
        x = self.layer_norm(self.activation(self.dense(x)))
        table = ops.cast(self.token_embedding.embeddings, x.dtype)
        logits = ops.matmul(x, ops.transpose(table))
        return ops.cast(logits, "float32") + ops.cast(self.output_bias, "float32")

    def compute_output_shape(self, sequence_output_shape, mask_positions_shape):
        return tuple(mask_positions_shape) + (self.token_embedding.input_dim,)

    def compute_output_spec(self, sequence_output, mask_positions):
        shape = self.compute_output_shape(sequence_output.shape, mask_positions.shape)
        return keras.KerasTensor(shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_act=self.hidden_act,
            layer_norm_eps=self.layer_norm_eps,
            initializer_range=self.initializer_range,
        )
        return config


@keras.saving.register_keras_serializable(package="kbert")
class ClassificationHead(keras.layers.Layer):
    """Dropout then a dense projection to `num_classes` logits over the last axis.

    Args:
        num_classes: number of outputs (1 for regression).
        dropout: dropout rate applied to the input features.
        initializer_range: stddev of the truncated-normal kernel initializer.
    """

    def __init__(self, num_classes, dropout=0.1, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.dropout_rate = dropout
        self.initializer_range = initializer_range
        self.dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        self.dense = keras.layers.Dense(
            num_classes, kernel_initializer=_kernel_init(initializer_range),
            dtype=self.dtype_policy, name="dense",
        )

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, features, training=None):
        return ops.cast(self.dense(self.dropout(features, training=training)), "float32")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_classes,)

    def compute_output_spec(self, features, training=None):
        return keras.KerasTensor(self.compute_output_shape(features.shape), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            dropout=self.dropout_rate,
            initializer_range=self.initializer_range,
        )
        return config


@keras.saving.register_keras_serializable(package="kbert")
class SpanHead(keras.layers.Layer):
    """Start and end logits of an answer span, one dense `[hidden, 2]` projection.

    Args:
        initializer_range: stddev of the truncated-normal kernel initializer.

    Returns:
        `(start_logits, end_logits)`, each float32 `[batch, seq_len]`.
    """

    def __init__(self, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.initializer_range = initializer_range
        self.dense = keras.layers.Dense(
            2, kernel_initializer=_kernel_init(initializer_range),
            dtype=self.dtype_policy, name="dense",
        )

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, sequence_output):
        logits = ops.cast(self.dense(sequence_output), "float32")
        return logits[..., 0], logits[..., 1]

    def compute_output_spec(self, sequence_output):
        shape = tuple(sequence_output.shape[:-1])
        return (keras.KerasTensor(shape, dtype="float32"), keras.KerasTensor(shape, dtype="float32"))

    def get_config(self):
        config = super().get_config()
        config.update(initializer_range=self.initializer_range)
        return config
