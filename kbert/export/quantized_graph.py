"""The encoder graph the full-integer TFLite files (`int8`, `int16x8`) are
converted from: the same function as the Keras model (outputs equal within
float32 rounding, ~1e-6), written so that per-tensor integer activations hold
BERT's accuracy.

Why a different graph. TFLite quantizes every activation tensor with one scale.
BERT's residual stream has outlier channels: in all-MiniLM-L6-v2 fine-tuned on
SST-2 the feed-forward output reaches ~200 in one channel while the other 383
stay below ~12, so the sum before each output LayerNorm rounded its ordinary
channels to one or two int8 steps, and the LayerNorm variance (c**2 of such a
sum, ~0.5 for most tokens, ~130 for [CLS]/[SEP]) lost the ordinary tokens
entirely. In development ablations on that model (500 dev rows, not kept as
a benchmark) the graph as Keras writes it lost 4.2 points as an integer-only
file, and 0.2 with only the residual sums and LayerNorms left in float. This
graph keeps every op integer and fixes those tensors instead; converted as
`kbert.export.tflite` does it loses 0.8 points there and 1.1 F1 on CoNLL NER,
past the export's 1-point gate there, which is why the integer-only modes are
opt-in (benchmarks/README.md, "Integer-only int8 and 16x8 TFLite"):

- Each residual sum is built in scaled coordinates `s = x / d`, `d` 1 for
  ordinary channels and `127 / m` (m an integer) for the channels whose
  calibrated maximum is over `OUTLIER_RATIO` times the median: the division is
  folded into the embedding tables and into the projection that feeds the sum,
  and the other addend is rescaled by a per-channel multiply.
- The LayerNorm reads the true mean and variance back through fully-connected
  layers whose weights (1/H, d/H, (d**2 - 1)/H on the outlier channels) are
  exact in per-channel int8, and applies gamma * d per channel with a 1x1
  depthwise convolution (per-channel int8 weights, int32 bias).
- The variance is scaled by a calibrated `k` (typical tokens near 1); where it
  spans more than `SPREAD_RATIO` across tokens the rsqrt takes two branches,
  `rsqrt(relu6(v)) + rsqrt(max(v, 6)) - rsqrt(6)`: the relu6 branch has a fine
  int8 range for ordinary tokens, the other one covers [CLS]/[SEP].
- 1/sqrt(head_size) is folded into the query projection; the attention mask is
  `kbert.layers.transformer.mask_scores` (with Select for int8; in arithmetic
  for 16x8, whose quantizer has no int16 SELECT_V2); embedding lookups are
  plain gathers (Keras wraps negative ids with int32 arithmetic that the 16x8
  quantizer rejects; kbert's ids are never negative).

The constants (`IntegerPlan`) are measured on calibration rows, real tokens
only (padded positions never reach an output). Only the encoder is rewritten;
pooler and task heads run as written, on the encoder's true output.
"""

import contextlib
import dataclasses
import math

import numpy as np

OUTLIER_RATIO = 8.0  # a channel whose calibrated max is over this x the median max is scaled down
SPREAD_RATIO = 8.0  # a LayerNorm whose variance (max / median over tokens) spans more takes two rsqrt branches
_RELU6 = 6.0
_BATCH = 32
ACTIVATIONS = ("int8", "int16")


@dataclasses.dataclass
class NormPlan:
    """How one LayerNorm and the residual sum it reads are computed.

    Args:
        d: float32 `[hidden]`, the sum's per-channel scale (1, or 127/m on outlier channels).
        k: the variance's scale (typical tokens near 1).
        two_branch: whether the rsqrt takes two branches (variance spread over tokens).
    """

    d: np.ndarray
    k: float = 1.0
    two_branch: bool = False

    @property
    def outliers(self):
        return int(np.sum(self.d != 1.0))


class IntegerPlan:
    """The encoder's weights (read once, eagerly: a traced graph cannot read
    them as numpy) and one `NormPlan` per LayerNorm (`measure` fills them)."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.norms = {}
        self._values = {id(v): np.asarray(v, np.float32) for v in encoder.weights}

    def value(self, variable):
        return self._values[id(variable)]

    def norm(self, name, hidden):
        return self.norms.get(name) or NormPlan(np.ones(hidden, np.float32))

    def summary(self):
        """Per LayerNorm: outlier channels, their scale, the variance scale and branches."""
        return {name: {"outlier_channels": p.outliers, "scale": float(p.d.max()), "k": round(p.k, 6),
                       "two_branch": p.two_branch} for name, p in self.norms.items()}


def find_encoder(model):
    """The `BertEncoder` of a kbert model (the model itself for an encoder)."""
    from kbert.models import BertEncoder

    if isinstance(model, BertEncoder):
        return model
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, BertEncoder):
        raise TypeError(f"{type(model).__name__}: no BertEncoder to quantize")
    return encoder


def measure(model, rows):
    """An `IntegerPlan` for `model` from calibration `rows` (dict of int
    arrays `token_ids`, `segment_ids`, `padding_mask` `[n, seq_len]`)."""
    import tensorflow as tf

    plan = IntegerPlan(find_encoder(model))
    channel_max, variances = {}, {}
    for start in range(0, len(rows["token_ids"]), _BATCH):
        batch = {k: np.asarray(rows[k][start:start + _BATCH], np.int32)
                 for k in ("token_ids", "segment_ids", "padding_mask")}
        record = {}
        _encode(plan, *(tf.constant(batch[k]) for k in ("token_ids", "segment_ids", "padding_mask")),
                _select_mask, record)
        real = batch["padding_mask"].astype(bool)
        for (name, kind), tensor in record.items():
            values = tensor.numpy()[real]
            if kind == "var":
                variances.setdefault(name, []).append(values[:, 0])
            else:
                top = np.abs(values).max(axis=0) if len(values) else np.zeros(values.shape[-1], np.float32)
                channel_max[name] = np.maximum(channel_max.get(name, top), top)
    for name, top in channel_max.items():
        plan.norms[name] = _choose(top, np.concatenate(variances[name]))
    return plan


def _choose(top, variance):
    """The `NormPlan` for a sum whose channels reach `top` and whose variance
    over real tokens is `variance`."""
    d = np.ones_like(top, dtype=np.float32)
    median = float(np.median(top))
    outlier = top > OUTLIER_RATIO * median if median > 0 else np.zeros(top.shape, bool)
    if outlier.any() and not outlier.all():
        ratio = float(top[outlier].max() / max(float(top[~outlier].max()), 1e-12))
        # 127 / m: the LayerNorm's mean weights d/H quantize exactly (to m and 127).
        d[outlier] = 127.0 / max(1, int(127 // ratio))
    typical = float(np.median(variance)) if len(variance) else 0.0
    if not typical > 0:
        return NormPlan(d)
    two_branch = float(variance.max()) / typical > SPREAD_RATIO
    # Typical tokens at 1 (one branch) or 1.5 (inside the relu6 branch's [0, 6]).
    k = (_RELU6 / 4 if two_branch else 1.0) / typical
    return NormPlan(d, k, two_branch)


@contextlib.contextmanager
def integer_graph(model, plan, activations="int8"):
    """Within this context `model` computes through the integer-friendly graph
    (its encoder's embeddings and blocks call this module); trace and save it
    there (`keras.export.ExportArchive`), then the model is as it was."""
    if activations not in ACTIVATIONS:
        raise ValueError(f"activations: expected one of {ACTIVATIONS}, got {activations!r}")
    encoder = find_encoder(model)
    mask = _select_mask if activations == "int8" else _arithmetic_mask
    calls = {encoder.embeddings: lambda token_ids, segment_ids, training=None: _embed(plan, token_ids, segment_ids)}
    for i, block in enumerate(encoder.transformer_layers):
        calls[block] = (lambda x, padding_mask=None, training=None, i=i, block=block:
                        _block(plan, i, block, x, padding_mask, mask))
    saved = {layer: layer.__dict__.get("call") for layer in calls}
    try:
        for layer, call in calls.items():
            layer.call = call  # Keras' Layer.__call__ runs the instance's `call`
        yield
    finally:
        for layer, old in saved.items():
            if old is None:
                del layer.call
            else:
                layer.call = old


# --- the graph ---------------------------------------------------------------------------------


def _dense(x, kernel, bias=None):
    """`x @ kernel + bias` over the last axis: one FULLY_CONNECTED in TFLite."""
    import tensorflow as tf

    flat = tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), tf.constant(kernel, tf.float32))
    if bias is not None:
        flat = flat + tf.constant(bias, tf.float32)
    return tf.reshape(flat, tf.concat([tf.shape(x)[:-1], [kernel.shape[1]]], 0))


def _per_channel(x, scale, shift=None):
    """`x * scale + shift` per channel as a 1x1 depthwise convolution: its
    weights are quantized per channel (a MUL by a constant vector has one
    scale for all channels)."""
    import tensorflow as tf

    hidden = x.shape[-1]
    kernel = tf.constant(np.reshape(scale, [1, 1, hidden, 1]), tf.float32)
    y = tf.nn.depthwise_conv2d(tf.reshape(x, [1, -1, 1, hidden]), kernel, [1, 1, 1, 1], "VALID")
    if shift is not None:  # fused into the convolution's int32 bias
        y = tf.nn.bias_add(y, tf.constant(shift, tf.float32))
    return tf.reshape(y, tf.shape(x))


def _layer_norm(plan, name, layer, s, record=None):
    """`layer` (a Keras LayerNormalization) of the sum whose scaled
    coordinates are `s` (`x / d`), in the true coordinates."""
    import tensorflow as tf

    hidden = s.shape[-1]
    p = plan.norm(name, hidden)
    d, k, outlier = p.d, p.k, p.d != 1.0
    if record is not None:
        record[name, "sum"] = s * tf.constant(d)
    mean = _dense(s, (d / hidden)[:, None])
    c = s - mean * tf.constant(1.0 / d) if outlier.any() else s - mean
    c2 = c * c

    def variance(scale):  # scale * k * mean(x - mean(x))**2, true coordinates
        v = _dense(c2, np.full((hidden, 1), scale * k / hidden, np.float32))
        if outlier.any():
            v = v + _dense(c2, np.where(outlier, scale * k * (d ** 2 - 1) / hidden, 0).astype(np.float32)[:, None])
        return v

    eps = layer.epsilon * k
    if p.two_branch:
        # Equal to rsqrt(v + eps) (up to eps on the large branch): each branch
        # gets its own int8 range. The halved copy keeps the converter from
        # merging the two variance sums (the relu6 must fuse into its own).
        r = (tf.math.rsqrt(tf.nn.relu6(variance(1.0)) + eps)
             + tf.math.rsqrt(tf.maximum(variance(0.5), _RELU6 / 2)) * (1 / math.sqrt(2)) - 1 / math.sqrt(_RELU6))
    else:
        v = variance(1.0)
        if record is not None:
            record[name, "var"] = v * (1.0 / k)
        r = tf.math.rsqrt(v + eps)
    gamma, beta = plan.value(layer.gamma), plan.value(layer.beta)
    return _per_channel(c * r, gamma * d * math.sqrt(k), beta)


def _embed(plan, token_ids, segment_ids, record=None):
    import tensorflow as tf

    layer = plan.encoder.embeddings
    d = plan.norm("embeddings", layer.hidden_size).d
    seq_len = token_ids.shape[1]
    tokens = tf.constant(plan.value(layer.token_embedding.embeddings) / d)
    segments = tf.constant(plan.value(layer.segment_embedding.embeddings) / d)
    positions = tf.constant(plan.value(layer.position_embeddings)[:seq_len] / d)
    s = tf.gather(tokens, token_ids) + tf.gather(segments, segment_ids) + positions[None]
    return _layer_norm(plan, "embeddings", layer.layer_norm, s, record)


def _block(plan, i, block, x, padding_mask, mask_scores, record=None):
    """`block` (a `kbert.layers.TransformerBlock`) on `x`, inference."""
    import tensorflow as tf

    kernel, bias = (lambda dense: plan.value(dense.kernel)), (lambda dense: plan.value(dense.bias))
    heads, size, hidden, seq_len = block.num_heads, block.head_size, block.hidden_size, x.shape[1]
    d_attention = plan.norm(f"{i}/attention", hidden).d
    d_output = plan.norm(f"{i}/output", hidden).d

    def split(t):
        return tf.transpose(tf.reshape(t, [-1, seq_len, heads, size]), [0, 2, 1, 3])

    scale = 1.0 / math.sqrt(size)
    q = split(_dense(x, kernel(block.query) * scale, bias(block.query) * scale))
    k = split(_dense(x, kernel(block.key), bias(block.key)))
    v = split(_dense(x, kernel(block.value), bias(block.value)))
    probs = tf.nn.softmax(mask_scores(tf.matmul(q, k, transpose_b=True), padding_mask), axis=-1)
    context = tf.reshape(tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3]), [-1, seq_len, hidden])
    attention = _dense(context, kernel(block.attention_output) / d_attention, bias(block.attention_output) / d_attention)
    a = _rescaled(x, 1.0 / d_attention) + attention
    g = _layer_norm(plan, f"{i}/attention", block.attention_norm, a, record)
    h = block.activation(_dense(g, kernel(block.intermediate), bias(block.intermediate)))
    out = _rescaled(g, 1.0 / d_output) + _dense(h, kernel(block.output_dense) / d_output,
                                                bias(block.output_dense) / d_output)
    return _layer_norm(plan, f"{i}/output", block.output_norm, out, record)


def _rescaled(x, scale):
    return _per_channel(x, scale) if (scale != 1.0).any() else x


def _encode(plan, token_ids, segment_ids, padding_mask, mask_scores, record=None):
    x = _embed(plan, token_ids, segment_ids, record)
    for i, block in enumerate(plan.encoder.transformer_layers):
        x = _block(plan, i, block, x, padding_mask, mask_scores, record)
    return x


def _select_mask(scores, padding_mask):
    """`kbert.layers.transformer.mask_scores` with the mask cast to bool
    (never to float: an int32 -> float32 Cast is a float op)."""
    import tensorflow as tf

    from kbert.layers.transformer import _MASK_BIAS, _SCORE_RANGE

    mask = tf.cast(padding_mask, tf.bool)[:, None, None, :]
    biased = tf.where(mask, scores, scores + _MASK_BIAS)
    floor = tf.reduce_max(biased, axis=-1, keepdims=True) - _SCORE_RANGE
    return tf.maximum(tf.where(mask, scores, floor), floor)


def _arithmetic_mask(scores, padding_mask):
    """The same values without Select or Cast: the padding indicator is looked
    up in a constant table (a quantizable Gather)."""
    import tensorflow as tf

    from kbert.layers.transformer import _MASK_BIAS, _SCORE_RANGE

    padded = tf.gather(tf.constant([1.0, 0.0]), padding_mask)[:, None, None, :]
    floor = tf.reduce_max(scores + padded * _MASK_BIAS, axis=-1, keepdims=True) - _SCORE_RANGE
    return tf.maximum(scores + padded * (floor - scores), floor)
