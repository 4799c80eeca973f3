"""Keras 3.15 + MultiWorkerMirroredStrategy: the workarounds `fit` needs.

Keras 3's TF trainer cannot `fit` under MultiWorkerMirroredStrategy out of the
box (tensorflow/tensorflow#72388): it reduces the scalar logs of each step with
`strategy.reduce("MEAN", v, axis=0)`, which fails on a 0-d tensor, and it
reduces a dict of inputs in one call before the first step. Both are patched
here on the model *instance*, only when a multi-worker strategy trains it, so
the saved architectures (`model.keras`) never depend on Keras internals and
single-worker training runs stock Keras.
"""

import types

import keras


def _is_multi_worker(strategy):
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _rank1(logs):
    # The reduction's mean over axis 0 of [1]-shaped values is the mean over workers.
    return {k: keras.ops.reshape(v, (1,)) for k, v in logs.items()}


def _train_step(self, *args, **kwargs):
    return _rank1(type(self).train_step(self, *args, **kwargs))


def _test_step(self, *args, **kwargs):
    return _rank1(type(self).test_step(self, *args, **kwargs))


def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    # Keras' TF trainer builds metrics from the first batch after reducing it
    # with a single `strategy.reduce` call, which MultiWorkerMirroredStrategy
    # cannot do for a dict of inputs ("Attempt to convert a value ({...
    # PerReplica..."). Building needs only shapes and dtypes, so take this
    # worker's first replica's tensors instead; every worker does the same,
    # so no collective is left unmatched.
    import tensorflow as tf

    strategy = getattr(self, "_distribute_strategy", None)
    if strategy is None or iterator is None or data_batch is not None:
        return type(self)._maybe_symbolic_build(self, iterator=iterator, data_batch=data_batch)
    for _, _, it in iterator:
        batch = next(it)
        break
    batch = keras.tree.map_structure(
        lambda v: strategy.experimental_local_results(v)[0]
        if isinstance(v, tf.distribute.DistributedValues) else v,
        batch,
    )
    with strategy.scope():
        self._symbolic_build(data_batch=batch)


def prepare_for_strategy(model, strategy):
    """Make `model.fit`/`evaluate` work under `strategy`.

    Does nothing unless `strategy` is a `MultiWorkerMirroredStrategy` on the
    TensorFlow backend; then binds the patched steps to this model instance.
    Returns `model`.
    """
    if keras.backend.backend() != "tensorflow" or not _is_multi_worker(strategy):
        return model
    for name, fn in (("train_step", _train_step), ("test_step", _test_step),
                     ("_maybe_symbolic_build", _maybe_symbolic_build)):
        object.__setattr__(model, name, types.MethodType(fn, model))
    return model
