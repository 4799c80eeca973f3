"""Keras callbacks of the fine-tuning loop (kept apart so that importing
`kbert.training.finetune` needs no Keras)."""

import keras


class EpochEvaluator(keras.callbacks.Callback):
    """The task metric on the eval data after every epoch, logged as
    `val_<name>` (TensorBoard shows it), the best epoch's weights kept in
    memory, early stopping.

    Args:
        task: the `kbert.tasks.Task` (its `evaluate` and `metric`).
        data, tokenizer, labels, seq_len, batch_size: what `task.evaluate` takes.
        patience: stop after this many epochs without a better metric (None: never).

    Attributes:
        history: one dict per epoch: `epoch`, `loss` and (with data) `eval`.
        best_epoch, best_metrics: the epoch kept and its metrics.
    """

    def __init__(self, task, data, tokenizer, labels, seq_len, batch_size, patience):
        super().__init__()
        self.task, self.data, self.tokenizer = task, data, tokenizer
        self.labels, self.seq_len, self.batch_size = labels, seq_len, batch_size
        self.patience = patience
        self.history = []
        self.best_epoch = None
        self.best_metrics = {}
        self.best_weights = None
        self._features = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        record = {"epoch": epoch + 1, "loss": float(logs.get("loss", float("nan")))}
        if self.data is None:
            self.history.append(record)
            return
        metrics = self.evaluate()
        record["eval"] = metrics
        self.history.append(record)
        for name, value in metrics.items():
            if isinstance(value, (int, float)):
                logs[f"val_{name}"] = value
        value = metrics[self.task.metric]
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        print(f"epoch {epoch + 1}: eval {shown}", flush=True)
        if self.best_epoch is None or value > self.best_metrics[self.task.metric]:
            self.best_epoch, self.best_metrics = epoch + 1, metrics
            self.best_weights = self.model.get_weights()
        elif self.patience and epoch + 1 - self.best_epoch >= self.patience:
            print(f"early stopping: no better {self.task.metric} for {self.patience} epoch(s)", flush=True)
            self.model.stop_training = True

    def evaluate(self):
        """The task's metrics of the model now on the eval data.

        The eval features are computed once for the whole run (the task's
        `evaluate` tokenizes again every epoch) and predicted in trimmed
        batches (`predict_arrays(trim=True)`); the predict function Keras
        compiles on the first epoch serves the later ones. Measured on MiniLM,
        500 SST-2 dev rows at seq 64, 1 thread (CPU seconds): 11.9-14.1 per
        epoch through `task.evaluate` (`model.predict`), against 7.1-8.3 for
        the first epoch (traces included) and 4.0 for a later one this way.
        A task with its own `evaluate` (the embedder's) keeps it.
        """
        from kbert.tasks.base import Task, model_inputs, predict_arrays

        task = self.task
        if type(task).evaluate is not Task.evaluate:
            return task.evaluate(self.model, self.data, self.tokenizer, self.labels, self.seq_len, self.batch_size)
        if self._features is None:
            self._features = task.features(self.data, self.tokenizer, self.labels, self.seq_len)
            trace_predict_once(self.model, model_inputs(self._features))
        outputs = predict_arrays(self.model, model_inputs(self._features), self.batch_size, trim=True)
        return task.score(self.data, self._features, outputs, self.labels)

    def records(self, eval_file, **run):
        """What metrics.json says of the run and its evaluation (`finetune`
        and `distill` write the same keys): `run` (epochs, batch_size, lr,
        warmup_steps, seq_len, seed, train_wall_time_s) with `epochs_run` and
        `history`, then, with eval data, `eval`, `best_epoch` and `metric`."""
        import os

        record = {"epochs": run.pop("epochs"), "epochs_run": len(self.history), **run, "history": self.history}
        if self.data is not None:
            record["eval"] = {"file": os.fspath(eval_file), "examples": len(self.data), **self.best_metrics}
            record["best_epoch"] = self.best_epoch
            record["metric"] = self.task.metric
        return record

    def restore_best(self, model):
        if self.best_weights is not None:
            model.set_weights(self.best_weights)


def trace_predict_once(model, inputs):
    """Trace `model`'s predict function for batches of any size and length.

    `predict_arrays(trim=True)` cuts each batch to its longest row, so the
    batches of one evaluation differ in length: the first call traces the
    predict function for its exact shape, the second traces it again with
    relaxed shapes (TensorFlow's `reduce_retracing`). Traced first for
    `[None, None]` inputs, the function serves every batch with that one
    trace. Measured (MiniLM, seq 64, 1 thread, benchmarks/finetune_phases.py):
    the first evaluation of 500 SST-2 dev rows took 5.9-7.0 s before, 4.1-4.7
    s this way, with the same accuracy.

    Args:
        model: a Keras model on the TensorFlow backend (others: nothing done).
        inputs: dict of the model's input arrays (their dtypes are used).
    """
    if keras.backend.backend() != "tensorflow" or model.run_eagerly:
        return
    import tensorflow as tf

    model.make_predict_function()
    function = model.predict_function
    if not hasattr(function, "get_concrete_function"):
        return
    spec = {name: tf.TensorSpec([None, None], tf.as_dtype(value.dtype)) for name, value in inputs.items()}
    try:
        function.get_concrete_function([(spec,)])  # predict_on_batch calls it with [(inputs,)]
    except (TypeError, ValueError):  # a Keras that calls it otherwise: it traces per shape as before
        pass
