"""The process TensorFlow runs in: a quiet start, the cluster and the strategy.

Everything here reads the environment once per process (`TF_CONFIG`, devices),
so pre-training, fine-tuning and the CLI agree on who the chief is and which
strategy trains.
"""

import atexit
import contextlib
import dataclasses
import functools
import json
import os
import re
import select
import sys
import threading

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

# A line TensorFlow's C++ side (absl or the older glog format) writes to fd 2:
# `E0000 00:00:1795.123   4242 util.cc:131] oneDNN supports DT_INT64 ...` or
# `2024-05-01 12:00:00.123456: W tensorflow/core/...cc:42] ...`, absl's notice
# that it logs to stderr before it is initialised, and the TFLite runtime's
# `INFO: Created TensorFlow Lite XNNPACK delegate for CPU.` (its minimal
# logger; its ERROR lines are kept).
NATIVE_LOG_LINE = re.compile(
    rb"(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^ \]]+:\d+\] "
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] [^ \]]+:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\r?$"
    rb"|(?:INFO|VERBOSE|WARNING): )"
)


def verbose_requested():
    """Whether `kbert --verbose` (or `$KBERT_VERBOSE`) asked for TensorFlow's own lines."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def start_tensorflow(verbose=None):
    """Import TensorFlow and initialise its devices quietly.

    TensorFlow's C++ side writes to fd 2 whatever `TF_CPP_MIN_LOG_LEVEL`
    says: at import ("failed call to cuInit", absl's "before
    absl::InitializeLog" notice) and later, whenever a graph is first
    rewritten for oneDNN (`E0000 ... oneDNN supports DT_INT64 only on
    platforms with AVX-512`, which looks like an error; measured: the first
    int64 `Transpose` inside a `tf.function`, as in `model.predict`, not any
    eager op), or a subprocess starts TensorFlow. So TensorFlow is imported
    with fd 2 on /dev/null, and, when this process's stderr is fd 2, fd 2 stays
    behind `filter_native_logs` for the rest of the run. absl/TF Python logging
    is set to errors only. `verbose=True` leaves everything on; the default
    reads `$KBERT_VERBOSE` (`kbert --verbose`).
    """
    if verbose is None:
        verbose = verbose_requested()
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        import tensorflow as tf  # noqa: F401

        return
    filter_native_logs()
    if "tensorflow" not in sys.modules:
        with _stderr_to_devnull():
            import tensorflow as tf

            tf.config.list_logical_devices()
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl comes with TensorFlow; nothing to quiet without it
        pass


_filter = None


def filter_native_logs():
    """Keep TensorFlow's C++ log lines off this process's stderr from now on.

    fd 2 becomes a pipe read by a thread that forwards everything except lines
    matching `NATIVE_LOG_LINE` to the original stderr. Filtering the file
    descriptor (not `sys.stderr`) also catches lines written by C++ code and by
    child processes, whenever they come; warming up the ops that log once
    would miss the next notice a TensorFlow update adds. Partial lines (progress
    bars) pass through at once. The pipe is drained when the process exits.

    Does nothing when `sys.stderr` is not fd 2 (a test runner capturing
    output, a notebook) or when already installed.

    Returns:
        True if fd 2 is filtered.
    """
    global _filter
    if _filter is not None:
        return True
    try:
        if sys.stderr is None or sys.stderr.fileno() != 2:
            return False
    except (AttributeError, OSError, ValueError):  # io.StringIO and the like
        return False
    _filter = _NativeLogFilter()
    return True


_LINE_END = re.compile(rb"(?<=[\r\n])")


class _NativeLogFilter:
    """fd 2 -> pipe -> thread -> the original stderr, minus native log lines."""

    # A partial line waits this long for its end before it is passed on.
    PARTIAL_WAIT_S = 0.05

    def __init__(self):
        sys.stderr.flush()
        self.target = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self.read_end = read_end
        self.thread = threading.Thread(target=self._pump, name="kbert-stderr-filter", daemon=True)
        self.thread.start()
        atexit.register(self.close)

    def _pump(self):
        pending = b""
        while True:
            if pending and not select.select([self.read_end], [], [], self.PARTIAL_WAIT_S)[0]:
                self._write(pending)  # a progress bar or prompt, not a log line
                pending = b""
            try:
                chunk = os.read(self.read_end, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            # "\r" ends a line too: a progress bar's "50%\r" followed at once by
            # a native log line must leave that line recognisable.
            *lines, pending = _LINE_END.split(pending + chunk)
            self._write(b"".join(line for line in lines if not NATIVE_LOG_LINE.match(line)))
        if pending and not NATIVE_LOG_LINE.match(pending):
            self._write(pending)
        os.close(self.read_end)

    def _write(self, data):
        while data:
            try:
                data = data[os.write(self.target, data):]
            except OSError:  # the reader went away (`kbert ... | head`)
                return

    def close(self):
        """Put the original stderr back and wait for the pipe to drain."""
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self.target, 2)  # closes the pipe's last write end in this process
        # A child still holding the pipe keeps it open: do not wait for it forever.
        self.thread.join(timeout=2.0)


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
