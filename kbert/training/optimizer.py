"""Training plumbing shared by pre-training and fine-tuning.

Everything here is stock Keras 3 put together the way BERT is trained: AdamW (or
LAMB) with decoupled weight decay that skips LayerNorm and bias variables, a linear
warm-up then linear decay schedule, global-norm clipping, gradient accumulation,
mixed precision, XLA, and a `tf.distribute` strategy picked from the environment.
The only piece written here is the schedule (Keras has no warm-up + linear decay).
"""

import keras

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
        epsilon: Adam epsilon (BERT uses 1e-6).
    """
    if name not in OPTIMIZERS:
        raise KbertError(f"optimizer: expected one of {list(OPTIMIZERS)}, got {name!r}")
    if accumulation_steps < 1:
        raise KbertError(f"accumulation_steps: expected >= 1, got {accumulation_steps}")
    schedule = WarmupLinearDecay(learning_rate, total_steps, warmup_steps)
    cls = keras.optimizers.AdamW if name == "adamw" else keras.optimizers.Lamb
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
