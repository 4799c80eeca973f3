"""Pooling of token vectors into one sentence vector (sentence embeddings).

`TokenPooling` does what sentence-transformers' `Pooling` module (and its
`Normalize` module) do, with the same arithmetic, so that an imported
sentence-transformers model gives the same vectors:

- `mean`: the mean over real tokens (`[CLS]` and `[SEP]` included, padding
  not), the sum divided by `max(count, 1e-9)`;
- `cls`: the `[CLS]` token's vector (the raw hidden state, not BERT's
  dense+tanh pooler);
- `max`: the element-wise max over real tokens (padding set to -1e9 first);
- `mean_sqrt_len`: the sum divided by `sqrt(count)`;
- `normalize`: then divide by the L2 norm, `max(norm, 1e-12)` (torch's
  `F.normalize`).

Written with `ops.expand_dims` and `ops.take` rather than slices with new
axes, which TFLite rejects (see `kbert.layers.transformer`), and computed in
float32 so that mixed precision changes nothing here.
"""

import keras
from keras import ops

POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len")


@keras.saving.register_keras_serializable(package="kbert")
class TokenPooling(keras.layers.Layer):
    """One vector per sequence from its token vectors.

    Args:
        mode: one of `POOLING_MODES` ("mean", "cls", "max", "mean_sqrt_len").
        normalize: divide each vector by its L2 norm.

    Call arguments:
        sequence_output: float `[batch, seq_len, hidden]`.
        padding_mask: int/bool `[batch, seq_len]`, 1 for real tokens.

    Returns:
        float32 `[batch, hidden]`.

    Examples:
    ```python
    pool = TokenPooling("mean", normalize=True)
    vectors = pool(encoder(inputs)["sequence_output"], inputs["padding_mask"])
    ```
    """

    def __init__(self, mode="mean", normalize=False, **kwargs):
        super().__init__(**kwargs)
        if mode not in POOLING_MODES:
            raise ValueError(f"pooling: expected one of {list(POOLING_MODES)}, got {mode!r}")
        self.mode = mode
        self.normalize = bool(normalize)

    def call(self, sequence_output, padding_mask):
        x = ops.cast(sequence_output, "float32")
        mask = ops.expand_dims(ops.cast(padding_mask, "float32"), -1)  # [batch, seq_len, 1]
        if self.mode == "cls":
            pooled = ops.take(x, 0, axis=1)
        elif self.mode == "max":
            pooled = ops.max(x * mask + (1.0 - mask) * -1e9, axis=1)
        else:
            total = ops.sum(x * mask, axis=1)
            count = ops.maximum(ops.sum(mask, axis=1), 1e-9)
            pooled = total / (count if self.mode == "mean" else ops.sqrt(count))
        if self.normalize:
            norm = ops.sqrt(ops.sum(ops.square(pooled), axis=-1, keepdims=True))
            pooled = pooled / ops.maximum(norm, 1e-12)
        return pooled

    def compute_output_spec(self, sequence_output, padding_mask):
        return keras.KerasTensor((sequence_output.shape[0], sequence_output.shape[-1]), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode, normalize=self.normalize)
        return config
