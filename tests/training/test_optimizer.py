import keras
import numpy as np
import pytest

from kbert.errors import KbertError
from kbert.runtime import get_strategy, is_chief
from kbert.training import WarmupLinearDecay, make_optimizer, set_precision


def test_warmup_then_linear_decay():
    schedule = WarmupLinearDecay(1e-3, total_steps=100, warmup_steps=10)
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100, 150)]
    np.testing.assert_allclose(values, [0.0, 5e-4, 1e-3, 5e-4, 0.0, 0.0], atol=1e-9)
    assert WarmupLinearDecay.from_config(schedule.get_config()).get_config() == schedule.get_config()


def test_weight_decay_skips_bias_and_layer_norm():
    inputs = keras.Input((4,))
    outputs = keras.layers.LayerNormalization()(keras.layers.Dense(4)(inputs))
    model = keras.Model(inputs, outputs)
    optimizer = make_optimizer(1e-1, total_steps=10, warmup_steps=0, weight_decay=0.5, clipnorm=None)
    for v in model.trainable_variables:  # non-trivial values for every variable
        v.assign(np.full(v.shape, 2.0, "float32"))
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    optimizer.apply([np.zeros(v.shape, "float32") for v in model.trainable_variables], model.trainable_variables)
    for v in model.trainable_variables:
        name = v.path.split("/")[-1]
        if name == "kernel":  # zero gradient: only the decoupled decay moves it
            np.testing.assert_allclose(v.numpy(), before[v.path] * (1 - 0.1 * 0.5), rtol=1e-5)
        else:
            assert name in ("bias", "gamma", "beta")
            np.testing.assert_array_equal(v.numpy(), before[v.path])


def test_options():
    assert make_optimizer(1e-3, 100, accumulation_steps=4).gradient_accumulation_steps == 4
    assert isinstance(make_optimizer(1e-3, 100, name="lamb"), keras.optimizers.Lamb)
    assert make_optimizer(1e-3, 100, clipnorm=1.0).global_clipnorm == 1.0
    with pytest.raises(KbertError, match="optimizer"):
        make_optimizer(1e-3, 100, name="sgd")
    with pytest.raises(KbertError, match="accumulation"):
        make_optimizer(1e-3, 100, accumulation_steps=0)


def test_precision_policy():
    try:
        set_precision("mixed_bfloat16")
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
        with pytest.raises(KbertError, match="precision"):
            set_precision("fp8")
    finally:
        set_precision("fp32")
    assert keras.config.dtype_policy().name == "float32"


def test_default_strategy_and_chief(monkeypatch):
    import tensorflow as tf

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert get_strategy() is tf.distribute.get_strategy()
    assert is_chief()
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}')
    assert not is_chief()


def test_step_values_shared_by_all_variables_change_no_update():
    # The schedule and bias corrections are computed once per step for all
    # variables (fewer ops to trace and run): the same ops on the same values.
    import tensorflow as tf

    rng = np.random.default_rng(0)
    shapes = {"kernel": (4, 3), "bias": (3,), "gamma": (5,)}
    starts = {name: rng.normal(size=shape).astype("float32") for name, shape in shapes.items()}
    grads = [rng.normal(size=shape).astype("float32") for shape in shapes.values()]

    def train(share, graph):
        variables = [keras.Variable(starts[name], name=name) for name in shapes]
        optimizer = make_optimizer(1e-2, total_steps=10, warmup_steps=3, weight_decay=0.1)
        optimizer.build(variables)
        if not share:
            optimizer._can_share_step_values = lambda: False
        step = lambda: optimizer.apply(grads, variables)
        if graph:
            step = tf.function(step)
        for _ in range(4):
            step()
        ops = len(step.get_concrete_function().graph.get_operations()) if graph else None
        return [v.numpy() for v in variables], ops

    for a, b in zip(train(True, False)[0], train(False, False)[0]):
        np.testing.assert_array_equal(a, b)  # eager: op for op the same arithmetic
    (shared, shared_ops), (plain, plain_ops) = train(True, True), train(False, True)
    for a, b in zip(shared, plain):  # Grappler may rewrite the two graphs differently (an ulp)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)
    assert shared_ops < plain_ops
