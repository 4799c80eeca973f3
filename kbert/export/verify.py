"""Checking an exported artifact against the Keras model: one `Verifier`
holds what every artifact is checked on (the evaluation features, the Keras
reference outputs, the task that scores them), so each exporter passes it
along instead of a dozen loose arguments."""

import dataclasses
import os
import statistics
import time

import numpy as np


def compare(outputs, reference, features):
    """Largest |difference| and argmax agreement over the valid positions."""
    diff, agree, total = 0.0, 0, 0
    mask = features["padding_mask"].astype(bool)
    for key, ref in reference.items():
        got = np.asarray(outputs[key], np.float32)[: len(ref)]
        ref = np.asarray(ref, np.float32)
        diff = max(diff, float(np.max(np.abs(got - ref)))) if ref.size else diff
        a, b = got.argmax(-1), ref.argmax(-1)
        same = a == b
        if ref.ndim == 3:  # per token: only real tokens count
            same = same[mask[: len(ref)]]
        agree += int(same.sum())
        total += same.size
    return diff, agree / max(total, 1)


def latency_ms(fn, runs):
    """Median wall time of `fn()` in ms over `runs` calls, after one warm-up."""
    fn()
    times = []
    for _ in range(max(int(runs), 1)):
        begin = time.perf_counter()
        fn()
        times.append(time.perf_counter() - begin)
    return round(statistics.median(times) * 1000, 2)


def size_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


@dataclasses.dataclass
class Verifier:
    """What every artifact of one export is checked on.

    Args:
        work: the export's build directory (row paths are relative to it).
        features: the evaluation features (model inputs and what `task.score`
            needs).
        reference: the Keras model's outputs on `features` (a dict).
        data: the labelled evaluation examples (None for an encoder).
        task: the `kbert.tasks.Task` that scores outputs (None for an encoder).
        labels: label names in id order.
        runs: timed batch-1 runs per artifact.
    """

    work: str
    features: dict
    reference: dict
    data: object = None
    task: object = None
    labels: list = None
    runs: int = 50

    def metric(self, outputs):
        """The task metric of `outputs`, in points (None without a task)."""
        if self.task is None:
            return None
        scores = self.task.score(self.data, self.features,
                                 outputs if len(outputs) > 1 else next(iter(outputs.values())), self.labels)
        value = scores[self.task.metric]
        return round(value if self.task.metric_in_percent else 100.0 * value, 3)

    def row(self, artifact, path, outputs, latency):
        """The report row of an artifact whose outputs on `features` are `outputs`."""
        diff, agree = compare(outputs, self.reference, self.features)
        return {"artifact": artifact, "path": os.path.relpath(path, self.work), "bytes": size_bytes(path),
                "metric": self.metric(outputs), "agreement": agree, "max_abs_diff": diff, "latency_ms": latency}

    def keras_row(self, model):
        """The reference row: the Keras model itself (batch-1 latency through
        the compiled `predict_on_batch`, the fast path)."""
        from kbert.tasks.base import model_inputs

        one = {k: v[:1] for k, v in model_inputs(self.features).items()}
        return {"artifact": "keras", "path": None, "bytes": None, "metric": self.metric(self.reference),
                "agreement": 1.0, "max_abs_diff": 0.0,
                "latency_ms": latency_ms(lambda: model.predict_on_batch(one), self.runs)}


def check_rows(rows, limits):
    """The failures of report `rows` (the first is Keras') against `limits`."""
    failures = []
    keras_metric = rows[0]["metric"]
    for row in rows[1:]:
        name = row["artifact"]
        if name in ("tflite_int8", "onnx_dynamic"):  # checked on the task metric, not label by label
            drop = limits[f"{name}_metric_drop"]
            if keras_metric is not None and keras_metric - row["metric"] > drop:
                failures.append(f"{name}: metric {row['metric']} is more than {drop} points below Keras' "
                                f"{keras_metric}")
            continue
        need = limits.get(name)
        if need is not None and row["agreement"] < need:
            failures.append(f"{name}: label agreement {row['agreement']:.4f} < {need}")
        if row.get("text_agreement") is not None and row["text_agreement"] < need:
            failures.append(f"{name}: raw-text signature agreement {row['text_agreement']:.4f} < {need}")
        if row.get("answer_agreement") is not None and row["answer_agreement"] < need:
            failures.append(f"{name}: raw-text answers agree with kbert.predict on "
                            f"{row['answer_agreement']:.4f} < {need}")
    return failures
