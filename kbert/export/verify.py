"""Checking an exported artifact against the Keras model: one `Verifier`
holds what every artifact is checked on (the evaluation features, the Keras
reference outputs, the task that scores them), so each exporter passes it
along instead of a dozen loose arguments."""

import dataclasses
import os
import statistics
import time

import numpy as np

from kbert.errors import KbertError


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
    vectors: bool = False

    def scores(self, outputs):
        """The task's metrics dict of `outputs` (None without a task or data)."""
        if self.task is None or self.data is None:
            return None
        return self.task.score(self.data, self.features,
                               outputs if len(outputs) > 1 else next(iter(outputs.values())), self.labels)

    def metric(self, outputs, scores=None):
        """The task metric of `outputs`, in points (None without a task)."""
        scores = self.scores(outputs) if scores is None else scores
        if scores is None:
            return None
        value = scores[self.task.metric]
        return round(value if self.task.metric_in_percent else 100.0 * value, 3)

    def row(self, artifact, path, outputs, latency):
        """The report row of an artifact whose outputs on `features` are `outputs`."""
        diff, agree = compare(outputs, self.reference, self.features)
        scores = self.scores(outputs)
        row = {"artifact": artifact, "path": os.path.relpath(path, self.work), "bytes": size_bytes(path),
               "metric": self.metric(outputs, scores), "agreement": agree, "max_abs_diff": diff,
               "latency_ms": latency}
        if self.vectors:
            row.update(vector_fields(outputs, self.reference, scores))
        return row

    def keras_row(self, model):
        """The reference row: the Keras model itself (batch-1 latency through
        the compiled `predict_on_batch`, the fast path)."""
        from kbert.tasks.base import model_inputs

        one = {k: v[:1] for k, v in model_inputs(self.features).items()}
        scores = self.scores(self.reference)
        row = {"artifact": "keras", "path": None, "bytes": None, "metric": self.metric(self.reference, scores),
               "agreement": 1.0, "max_abs_diff": 0.0,
               "latency_ms": latency_ms(lambda: model.predict_on_batch(one), self.runs)}
        if self.vectors:
            row.update(vector_fields(self.reference, self.reference, scores))
        return row


def teacher_row(info, spec, verifier, student):
    """The teacher of a distilled student model dir (metrics.json `teacher`,
    written by `kbert distill`), run as Keras on the export's evaluation rows,
    so that the report shows teacher and student side by side: its metric,
    its label agreement with the student, parameters and batch-1 latency.

    Returns:
        The row (`artifact` "teacher"), one with a `note` when the teacher
        cannot be compared (moved, another task or vocabulary), or None when
        the model was not distilled or the export has no evaluation data.
    """
    from kbert.model_dir import load_model, read_model_dir
    from kbert.tasks.base import model_inputs, predict_arrays

    teacher = ((info.metrics or {}).get("teacher") or {}).get("model_dir")
    if not teacher or verifier.data is None:
        return None
    row = {"artifact": "teacher", "model_dir": teacher}
    try:
        found = read_model_dir(teacher)
    except KbertError as e:
        return {**row, "note": f"not compared: {e}"}
    if found.task != info.task or found.vocab != info.vocab or found.labels != info.labels:
        return {**row, "note": "not compared: another task, vocabulary or label set than the student's"}
    model = spec.export_model(load_model(teacher))
    inputs = model_inputs(verifier.features)
    outputs = predict_arrays(model, inputs, 64)
    outputs = outputs if isinstance(outputs, dict) else {"logits": outputs}  # as export's reference
    _, agree = compare(outputs, verifier.reference, verifier.features)
    one = {k: v[:1] for k, v in inputs.items()}
    return {**row, "metric": verifier.metric(outputs), "agreement": agree, "parameters": model.count_params(),
            "student_parameters": student.count_params(),
            "latency_ms": latency_ms(lambda: model.predict_on_batch(one), verifier.runs)}


def cosines(outputs, reference):
    """Row-wise cosine of each output array with its reference (vectors)."""
    found = []
    for key, ref in reference.items():
        got = np.asarray(outputs[key], np.float64)[: len(ref)].reshape(len(ref), -1)
        ref = np.asarray(ref, np.float64).reshape(len(ref), -1)
        norms = np.maximum(np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1), 1e-24)
        found.append(np.sum(got * ref, axis=1) / norms)
    return np.concatenate(found) if found else np.ones(0)


def vector_fields(outputs, reference, scores):
    """What a row of a vector model (embeddings) reports instead of label
    agreement (None there): min and mean cosine to the Keras vectors, and
    Recall@10 (in points) when the evaluation data is a retrieval set."""
    values = cosines(outputs, reference)
    fields = {"agreement": None, "min_cosine": float(values.min()) if values.size else 1.0,
              "mean_cosine": float(values.mean()) if values.size else 1.0}
    if scores and "recall@10" in scores:
        fields["recall@10"] = round(100.0 * scores["recall@10"], 3)
    return fields


def check_rows(rows, limits):
    """The failures of report `rows` (the first is Keras') against `limits`."""
    failures = []
    keras_metric = rows[0]["metric"]
    for row in rows[1:]:
        name = row["artifact"]
        # MediaPipe's own tokenizer on ASCII texts (kbert/export/metadata.py).
        mediapipe = (row.get("mediapipe") or {}).get("litert_agreement_ascii")
        if mediapipe is not None and mediapipe < limits.get("mediapipe", 0.0):
            failures.append(f"{name}: MediaPipe from raw ASCII text agrees with the file on kbert's tokens on "
                            f"{mediapipe:.4f} < {limits['mediapipe']}")
        if row.get("min_cosine") is not None:  # vectors: checked by cosine to Keras, not by labels
            failures += _vector_failures(row, limits)
            continue
        if name in ("tflite_int8", "tflite_int16x8", "onnx_dynamic"):  # checked on the task metric, not label by label
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


def _vector_failures(row, limits):
    name, failures = row["artifact"], []
    for field in ("min_cosine", "text_min_cosine"):
        need, value = limits.get(f"{name}_min_cosine"), row.get(field)
        if value is not None and need is not None and value < need:
            what = "raw-text signature's min cosine" if field.startswith("text") else "min cosine"
            failures.append(f"{name}: {what} to the Keras vectors {value:.6f} < {need}")
    need, value = limits.get("similarity_max_abs_diff"), row.get("similarity_max_abs_diff")
    if value is not None and need is not None and value > need:
        failures.append(f"{name}: the similarity signature differs from the Keras cosines by {value:.2e} > {need}")
    return failures
