"""Serving for sentence embedders.

`serving_default`: `text` in, `embedding` out: float32 `[batch, hidden]`,
L2-normalised whatever the model's `normalize` (a dot product of two served
vectors is their cosine, what search needs).

`similarity` (`extra_endpoints`): `text` and `text_pair` in, `similarity` out:
float32 `[batch]`, the cosine of each pair's vectors.

Each batch is cut to its longest text before the model runs (padding is
masked, so the vectors are those of the full `seq_len`): a short query costs
what its tokens cost, as in `kbert.tasks.embed.embed_texts`.
"""

from kbert.tasks.serving import text_specs


def _embedding(model, tokenizer, seq_len):
    import tensorflow as tf

    def embed(text):
        inputs = tokenizer(text, seq_len=seq_len)
        length = tf.reduce_max(tf.reduce_sum(inputs["padding_mask"], axis=1))
        inputs = {k: v[:, :length] for k, v in inputs.items()}
        vectors = tf.cast(model(inputs, training=False)["embedding"], tf.float32)
        return tf.math.l2_normalize(vectors, axis=-1, epsilon=1e-24)  # norm floored at 1e-12, as torch

    return embed


def serving_default(model, tokenizer, seq_len, task=None, labels=None, pair=False):
    embed = _embedding(model, tokenizer, seq_len)
    return (lambda text: {"embedding": embed(text)}), text_specs()


def extra_endpoints(model, tokenizer, seq_len, task=None, labels=None):
    """`{"similarity": (function, input signature)}`."""
    import tensorflow as tf

    embed = _embedding(model, tokenizer, seq_len)

    def similarity(text, text_pair):
        return {"similarity": tf.reduce_sum(embed(text) * embed(text_pair), axis=-1)}

    return {"similarity": (similarity, text_specs(True))}
