"""The process TensorFlow runs in: a quiet start, the cluster and the strategy.

Everything here reads the environment once per process (`TF_CONFIG`, devices),
so pre-training, fine-tuning and the CLI agree on who the chief is and which
strategy trains.
"""

import contextlib
import dataclasses
import functools
import json
import os
import sys

from kbert.errors import ConfigError

# TensorFlow logs a page of C++ notices at import; users asked for kbert's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def _stderr_to_devnull():
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


VERBOSE_ENV = "KBERT_VERBOSE"


def start_tensorflow(verbose=None):
    """Import TensorFlow and initialise its devices quietly.

    TensorFlow prints C++ notices to fd 2 before logging is configured,
    whatever TF_CPP_MIN_LOG_LEVEL says ("failed call to cuInit", and with
    oneDNN `E0000 ... oneDNN supports DT_INT64 only on platforms with AVX-512`,
    which looks like an error and comes the first time a kernel runs). They are
    sent to /dev/null here, and absl/TF Python logging is set to errors only,
    so a command's output or error stays what the user sees. `verbose=True`
    leaves everything on; the default reads `$KBERT_VERBOSE` (`kbert --verbose`).
    """
    if verbose is None:
        verbose = os.environ.get(VERBOSE_ENV, "") not in ("", "0")
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    if "tensorflow" in sys.modules:
        return
    if verbose:
        import tensorflow as tf  # noqa: F401

        return
    with _stderr_to_devnull():
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        tf.config.list_logical_devices()
        # The oneDNN int64 notice is printed when the first int64 kernel runs,
        # not at import: run one now, while fd 2 is closed.
        tf.math.reduce_sum(tf.constant([1], tf.int64)).numpy()
        tf.strings.to_number(tf.constant(["1"]), tf.int64).numpy()
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl comes with TensorFlow; nothing to quiet without it
        pass


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This process's place in a multi-worker job, from `TF_CONFIG`.

    Attributes:
        workers: the cluster's worker addresses (empty for one process).
        task_type: `worker` or `chief` (or another TF role).
        task_index: this process's index among its type.
    """

    workers: tuple = ()
    task_type: str = "worker"
    task_index: int = 0

    @property
    def multi_worker(self):
        return len(self.workers) > 1

    @property
    def is_chief(self):
        """The process that writes outputs: the chief, or worker 0."""
        return self.task_type == "chief" or (self.task_type == "worker" and self.task_index == 0)


def cluster(environ=None):
    """Parse `TF_CONFIG` (once per value) into a `Cluster`; raises
    `ConfigError` naming the field when it is malformed."""
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "") or ""
    return _parse_tf_config(raw)


@functools.lru_cache(maxsize=8)
def _parse_tf_config(raw):
    if not raw.strip():
        return Cluster()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError(f"TF_CONFIG: not valid JSON ({e.msg})") from None
    if not isinstance(value, dict):
        raise ConfigError("TF_CONFIG: expected a JSON object")
    workers = value.get("cluster", {}).get("worker", [])
    task = value.get("task", {})
    if not isinstance(workers, list) or not isinstance(task, dict):
        raise ConfigError("TF_CONFIG: cluster.worker must be a list and task an object")
    try:
        index = int(task.get("index", 0))
    except (TypeError, ValueError):
        raise ConfigError(f"TF_CONFIG: task.index is {task.get('index')!r}, expected an integer") from None
    return Cluster(tuple(workers), str(task.get("type", "worker")), index)


def is_chief():
    """True on the process that writes outputs (worker 0, the chief, or a single process)."""
    return cluster().is_chief


def get_strategy():
    """The `tf.distribute` strategy this process should train under.

    - `TF_CONFIG` naming several workers: `MultiWorkerMirroredStrategy` (every worker
      runs the same command; see README).
    - several visible GPUs: `MirroredStrategy`.
    - otherwise the default strategy (one CPU or GPU).

    TPUs: create `tf.distribute.TPUStrategy(tf.distribute.cluster_resolver.
    TPUClusterResolver())` yourself and build/compile the model in its scope; the
    models and datasets here use fixed shapes (`drop_remainder`) as TPUs need.
    """
    import tensorflow as tf

    if cluster().multi_worker:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
