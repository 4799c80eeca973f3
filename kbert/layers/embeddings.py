"""BERT input embeddings: token + learned absolute position + segment, then LayerNorm.

Written here rather than taken from keras-hub so the three tables and the LayerNorm
map one-to-one onto Google's `bert/embeddings/*` and HF's `embeddings.*` variables.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kbert")
class BertEmbeddings(keras.layers.Layer):
    """Sum of token, position and segment embeddings, normalised and dropped out.

    Args:
        vocab_size: rows of the token table.
        hidden_size: embedding width.
        max_position_embeddings: rows of the position table (longest sequence).
        type_vocab_size: rows of the segment table.
        dropout: dropout rate after the LayerNorm.
        layer_norm_eps: LayerNorm epsilon.
        initializer_range: stddev of the truncated-normal initializer.

    Call arguments:
        token_ids: int tensor `[batch, seq_len]`.
        segment_ids: int tensor `[batch, seq_len]`.

    Examples:
    ```python
    layer = BertEmbeddings(vocab_size=100, hidden_size=16,
                           max_position_embeddings=32, type_vocab_size=2)
    x = layer(np.ones((2, 8), "int32"), np.zeros((2, 8), "int32"))  # (2, 8, 16)
    ```
    """

    def __init__(
        self,
        vocab_size,
        hidden_size,
        max_position_embeddings,
        type_vocab_size,
        dropout=0.1,
        layer_norm_eps=1e-12,
        initializer_range=0.02,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.dropout_rate = dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        init = keras.initializers.TruncatedNormal(stddev=initializer_range)
        self.token_embedding = keras.layers.Embedding(
            vocab_size, hidden_size, embeddings_initializer=init, dtype=self.dtype_policy,
            name="token_embedding",
        )
        self.segment_embedding = keras.layers.Embedding(
            type_vocab_size, hidden_size, embeddings_initializer=init, dtype=self.dtype_policy,
            name="segment_embedding",
        )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, dtype=self.dtype_policy, name="layer_norm"
        )
        self.dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy, name="dropout")

    def build(self, token_ids_shape, segment_ids_shape=None):
        self.token_embedding.build(token_ids_shape)
        self.segment_embedding.build(token_ids_shape)
        self.position_embeddings = self.add_weight(
            name="position_embeddings",
            shape=(self.max_position_embeddings, self.hidden_size),
            initializer=keras.initializers.TruncatedNormal(stddev=self.initializer_range),
        )
        self.layer_norm.build((None, None, self.hidden_size))

    def call(self, token_ids, segment_ids, training=None):
        seq_len = ops.shape(token_ids)[1]
        table = ops.convert_to_tensor(self.position_embeddings)
        positions = ops.slice(table, (0, 0), (seq_len, self.hidden_size))
        positions = ops.cast(positions, self.compute_dtype)
        x = self.token_embedding(token_ids) + self.segment_embedding(segment_ids)
        x = x + ops.expand_dims(positions, 0)
        return self.dropout(self.layer_norm(x), training=training)

    def compute_output_shape(self, token_ids_shape, segment_ids_shape=None):
        return tuple(token_ids_shape) + (self.hidden_size,)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size,
            dropout=self.dropout_rate,
            layer_norm_eps=self.layer_norm_eps,
            initializer_range=self.initializer_range,
        )
        return config
