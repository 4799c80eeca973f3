"""Training plumbing shared by pre-training and fine-tuning.

Everything here is stock Keras 3 put together the way BERT is trained: AdamW (or
LAMB) with decoupled weight decay that skips LayerNorm and bias variables, a linear
warm-up then linear decay schedule, global-norm clipping, gradient accumulation,
mixed precision, XLA, and a `tf.distribute` strategy picked from the environment.
Written here: the schedule (Keras has no warm-up + linear decay), and two
corrections that make a kbert step the step PyTorch / Hugging Face take (measured
by benchmarks/training_parity.py): AdamW's epsilon added after the bias
correction (`AdamW`), and the clipping norm of embedding gradients (`AdamW`,
`Lamb`).
"""

import keras
from keras import ops

from kbert.errors import KbertError

PRECISIONS = ("fp32", "mixed_float16", "mixed_bfloat16")
OPTIMIZERS = ("adamw", "lamb")
# Google's BERT excludes LayerNorm and bias from weight decay; in Keras the
# LayerNorm variables are called gamma/beta, and the MLM head has output_bias.
NO_DECAY = ["bias", "gamma", "beta"]


@keras.saving.register_keras_serializable(package="kbert")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak` over `warmup_steps`, then linear decay to 0.

    Args:
        peak: the learning rate reached after warm-up.
        total_steps: step at which the rate reaches 0.
        warmup_steps: length of the warm-up.
    """

    def __init__(self, peak, total_steps, warmup_steps):
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warmup = keras.ops.maximum(float(self.warmup_steps), 1.0)
        decay = keras.ops.maximum(float(self.total_steps - self.warmup_steps), 1.0)
        up = self.peak * step / warmup
        down = self.peak * keras.ops.maximum(0.0, (self.total_steps - step) / decay)
        return keras.ops.where(step < self.warmup_steps, up, down)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}


def _dense(gradient):
    """A TensorFlow `IndexedSlices` gradient (an embedding lookup's) as a dense tensor.

    Keras' global-norm clipping squares such a gradient's slices as they come, one
    per token, before the slices of a token seen twice in the batch are summed:
    the norm it clips with is then not the gradient's norm (a tiny BERT's first
    batch: 1.249 instead of 1.294), and every clipped step differs from
    PyTorch's, whose embedding gradients are dense. The Adam update itself
    densifies the gradient and was right. Other backends give dense gradients.
    """
    if gradient is None or keras.backend.backend() != "tensorflow":
        return gradient
    import tensorflow as tf

    return tf.convert_to_tensor(gradient) if isinstance(gradient, tf.IndexedSlices) else gradient


class _DenseGradients:
    """Mixin: `apply` with embedding gradients made dense, so that global-norm
    clipping uses the true norm (see `_dense`), and the values every variable's
    update shares computed once per step.

    Keras reads `learning_rate` (the whole warm-up/decay schedule) once per
    variable for weight decay, and an update step recomputes its scalars
    (bias corrections) per variable: for MiniLM ~1,600 duplicate scalar ops
    in the train step, traced in Python on the first step and left for
    Grappler's common-subexpression pass to merge. They are the same ops on
    the same values, so sharing them changes no result (eagerly, bit for
    bit; in a graph Grappler may round a rewrite differently, an ulp).
    Shared within one `apply` only, and only where all of it is one graph:
    TensorFlow's default strategy (a `tf.distribute`
    strategy updates per replica) without gradient accumulation (whose
    updates run in a conditional branch), or another backend.
    """

    _per_step = None

    def apply(self, grads, trainable_variables=None):
        self._per_step = {} if self._can_share_step_values() else None
        try:
            return super().apply([_dense(g) for g in grads], trainable_variables)
        finally:
            self._per_step = None

    def _can_share_step_values(self):
        if self.gradient_accumulation_steps:
            return False
        if keras.backend.backend() != "tensorflow":
            return True
        import tensorflow as tf

        return not tf.distribute.has_strategy()

    def _shared(self, key, make):
        """`make()`, computed once per `apply` (see the class docstring)."""
        if self._per_step is None:
            return make()
        if key not in self._per_step:
            self._per_step[key] = make()
        return self._per_step[key]

    def _get_current_learning_rate(self):
        return self._shared("learning_rate", super()._get_current_learning_rate)


@keras.saving.register_keras_serializable(package="kbert")
class Lamb(_DenseGradients, keras.optimizers.Lamb):
    """`keras.optimizers.Lamb` with embedding gradients made dense before
    clipping (Keras' clipping norm of an embedding gradient is wrong; see
    `AdamW`). Arguments, config and variables are Keras'.
    """


@keras.saving.register_keras_serializable(package="kbert")
class AdamW(_DenseGradients, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with epsilon added after Adam's bias correction.

    Keras adds epsilon to sqrt(v) before the bias correction ("epsilon hat" of
    Kingma & Ba), so the epsilon in effect is `epsilon / sqrt(1 - beta_2**t)`:
    31x larger at step 1, 4.5x at step 50. PyTorch's `torch.optim.AdamW` (what
    Hugging Face fine-tunes with) adds it after, as Algorithm 1 of the paper:

        variable -= lr / (1 - beta_1**t) * m / (sqrt(v / (1 - beta_2**t)) + epsilon)

    With BERT's epsilon 1e-6 the Keras form damps the steps of every weight whose
    gradient is small, and fine-tuning on a few thousand rows learned measurably
    slower than the reference. Embedding gradients are also made dense before
    global-norm clipping: Keras squares an embedding gradient's slices before the
    slices of repeated tokens are summed, and clipped with a wrong norm.
    Arguments, config and variables are Keras' (a checkpoint of one restores
    into the other); decoupled weight decay (`variable -= variable * weight_decay
    * lr`, before the step) is Keras' too, the same as PyTorch's.

    Args:
        As `keras.optimizers.AdamW`.

    Examples:
    ```python
    optimizer = AdamW(learning_rate=3e-5, weight_decay=0.01, epsilon=1e-6)
    ```
    """

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)

        def corrections():
            lr = ops.cast(learning_rate, dtype)
            step = ops.cast(self.iterations + 1, dtype)
            correction_1 = 1 - ops.power(ops.cast(self.beta_1, dtype), step)
            correction_2 = 1 - ops.power(ops.cast(self.beta_2, dtype), step)
            return ops.sqrt(correction_2), ops.divide(lr, correction_1)

        sqrt_correction_2, step_size = self._shared(("adamw", dtype), corrections)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        if self.amsgrad:
            v_hat = self._velocity_hats[self._get_variable_index(variable)]
            self.assign(v_hat, ops.maximum(v_hat, v))
            v = v_hat
        # The order of torch.optim.AdamW's own arithmetic, for step-for-step parity.
        denominator = ops.add(ops.divide(ops.sqrt(v), sqrt_correction_2), self.epsilon)
        self.assign_sub(variable, ops.multiply(ops.divide(m, denominator), step_size))


def warmup_steps(warmup, total):
    """Warm-up steps from a fraction of all `total` steps (< 1) or a step count."""
    return int(round(warmup * total)) if warmup < 1 else int(warmup)


def make_optimizer(
    learning_rate,
    total_steps,
    warmup_steps=0,
    name="adamw",
    weight_decay=0.01,
    clipnorm=1.0,
    accumulation_steps=1,
    epsilon=1e-6,
):
    """The BERT optimizer.

    Args:
        learning_rate: peak learning rate.
        total_steps: optimizer steps of the whole run (after accumulation).
        warmup_steps: linear warm-up steps.
        name: `adamw` (BERT's Adam with decoupled weight decay) or `lamb` (large
            batches).
        weight_decay: decoupled decay rate; LayerNorm and bias are excluded.
        clipnorm: global gradient-norm clip (BERT uses 1.0); `None` disables.
        accumulation_steps: batches whose gradients are summed per update.
        epsilon: Adam epsilon (BERT uses 1e-6), added after the bias
            correction as in PyTorch (see `AdamW`).
    """
    if name not in OPTIMIZERS:
        raise KbertError(f"optimizer: expected one of {list(OPTIMIZERS)}, got {name!r}")
    if accumulation_steps < 1:
        raise KbertError(f"accumulation_steps: expected >= 1, got {accumulation_steps}")
    schedule = WarmupLinearDecay(learning_rate, total_steps, warmup_steps)
    cls = AdamW if name == "adamw" else Lamb
    optimizer = cls(
        learning_rate=schedule,
        weight_decay=weight_decay,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=epsilon,
        global_clipnorm=clipnorm,
        gradient_accumulation_steps=accumulation_steps if accumulation_steps > 1 else None,
    )
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY)
    return optimizer


def set_precision(precision):
    """Set the global Keras dtype policy; call before building the model."""
    if precision not in PRECISIONS:
        raise KbertError(f"precision: expected one of {list(PRECISIONS)}, got {precision!r}")
    keras.config.set_dtype_policy("float32" if precision == "fp32" else precision)
