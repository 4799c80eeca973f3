"""`kbert.export.export`: build every artifact in a temporary directory, verify
each against the Keras model, and move the directory into place only when all
pass their thresholds."""

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from kbert.config import check_seq_len
from kbert.errors import ConfigError, DataError, KbertError
from kbert.io import read_json, write_json
from kbert.outputs import output_dir, output_kind, require_space, writes_output
from kbert.export.metadata import ExportMetadata
from kbert.export.tflite import DEFAULT_MODES, INTEGER_MODES, MODES, TFLITE_INPUTS, ids_outputs
from kbert.export.verify import Verifier, check_rows, compare, latency_ms, size_bytes as _size, teacher_row

FORMATS = ("savedmodel", "tflite", "onnx")
# What an encoder's export is checked on (it has no evaluation data).
ENCODER_TEXTS = ["kbert exports the encoder too.", "A second sentence."]
# What an embedder's export is checked on when it has no evaluation data:
# short and long, similar and unrelated, accented, empty.
EMBED_TEXTS = [
    "A man is playing a guitar.", "Someone plays an acoustic guitar on stage.", "The stock market fell sharply today.",
    "Shares dropped as investors worried about interest rates.", "How do I reset my password?",
    "To change your password, open Settings and choose Security, then follow the steps sent to your e-mail.",
    "Café au lait, naïve résumé.", "", "kbert exports sentence embedders to TF Serving, TFLite and ONNX.",
    "The cat sat on the mat.",
]
# Vector models (embeddings): the least cosine between an artifact's vectors
# and the Keras model's, per artifact; and the most the `similarity`
# signature may differ from the cosine of the Keras vectors.
DEFAULT_COSINE_THRESHOLDS = {
    "savedmodel_min_cosine": 0.9999, "onnx_min_cosine": 0.9999, "tflite_float32_min_cosine": 0.9999,
    "tflite_float16_min_cosine": 0.999, "tflite_dynamic_min_cosine": 0.95, "tflite_int8_min_cosine": 0.9,
    "tflite_int16x8_min_cosine": 0.95,
    "onnx_dynamic_min_cosine": 0.95, "similarity_max_abs_diff": 1e-4,
}
# Label agreement with the Keras model (fraction), and the most the task metric
# may drop (points) for full int8.
DEFAULT_THRESHOLDS = {
    "savedmodel": 1.0, "onnx": 1.0, "tflite_float32": 1.0, "tflite_float16": 0.995,
    "tflite_dynamic": 0.99, "tflite_int8_metric_drop": 1.0, "tflite_int16x8_metric_drop": 1.0,
    "onnx_dynamic_metric_drop": 1.0,
    # MediaPipe from raw ASCII text vs the same TFLite file on kbert's tokens
    # (kbert/export/metadata.py; other text can differ: MediaPipe keeps accents).
    "mediapipe": 0.99,
}

QUANTIZATION = {
    "onnx": "none (float32; onnxruntime's SkipLayerNormalization and BiasGelu fusions)",
    "onnx_dynamic": "int8 weights (a scale per channel), activations quantized at run time "
                    "(onnxruntime quantize_dynamic)",
    "tflite_float32": "none",
    "tflite_float16": "float16 weights, float32 compute",
    "tflite_dynamic": "int8 weights, activations quantized at run time",
    "tflite_int8": "integer-only: int8 weights (a scale per channel) and int8 activations (calibrated), every op "
                   "int8/int32; int32 inputs, float32 outputs through one final dequantize; converted from an "
                   "equivalent graph that rescales the residual stream's outlier channels "
                   "(kbert/export/quantized_graph.py)",
    "tflite_int16x8": "integer-only: int8 weights (a scale per channel) and int16 activations (calibrated, "
                      "TFLite's 16x8 mode); int32 inputs, float32 outputs through one final dequantize; same "
                      "graph as int8",
}


class ExportError(KbertError):
    """An artifact failed its check; nothing was written."""


def _inputs(arguments):
    """What `export` reads: the model dir and the eval / calibration files,
    given or named in its metrics.json (an `out` holding one is refused)."""
    named = []
    try:
        metrics = read_json(os.path.join(arguments["model_dir"], "metrics.json"))
        named = [metrics[key]["file"] for key in ("eval", "train")
                 if isinstance(metrics.get(key), dict) and isinstance(metrics[key].get("file"), str)]
    except (KbertError, AttributeError):  # no metrics: export reports the model dir itself
        pass
    return [arguments["model_dir"], arguments["eval"], arguments["calibration"], *named]


@writes_output("export", inputs=_inputs)
def export(model_dir, out, formats=FORMATS, quantize=DEFAULT_MODES, seq_len=None, eval=None, eval_size=500,
           calibration=None, calibration_size=200, version=None, thresholds=None, latency_runs=50,
           pair=None, progress=print, overwrite=False):
    """Export `model_dir` under `out` and verify every artifact.

    Args:
        model_dir: a kbert model directory (classify, ner, qa; the encoder of
            pretrain/encoder dirs).
        out: export directory (e.g. `exports/sst2`); an existing export keeps
            its other SavedModel versions. Checked and locked before the work
            starts; anything else there is refused unless `overwrite`.
        formats: any of "savedmodel", "tflite", "onnx".
        quantize: TFLite modes: "float32", "float16", "dynamic" (the
            default), "int8" (integer-only, for integer accelerators),
            "int16x8" (integer-only, int16 activations); "int8" and "int16x8"
            are calibrated on `calibration` and held to the metric.
            ONNX always writes onnx/model.onnx (float32) and, with
            "dynamic", onnx/model_dynamic.onnx (int8 weights).
        seq_len: fixed TFLite length and SavedModel padding (default: the
            model dir's).
        eval: labelled evaluation file for the verification (default: the
            eval file in the model dir's metrics.json).
        eval_size: examples verified (the first N).
        calibration: file of the task's training data for full-int8
            calibration (default: the training file in metrics.json).
        version: SavedModel version (default: the next free integer).
        thresholds: overrides of `DEFAULT_THRESHOLDS`.
        pair: classify only: serve `text` + `text_pair` (default: whether the
            evaluation data has a second text column).
        overwrite: replace an existing `out` that is not a kbert export
            (never one holding an input or the current directory).

    Returns:
        The report dict (also written as report.json / report.md).
    """
    from kbert.model_dir import load_model, read_model_dir
    from kbert.tasks import model_dir_task, registry
    from kbert.tasks.base import model_inputs, predict_arrays

    formats = [formats] if isinstance(formats, str) else list(formats)
    quantize = [quantize] if isinstance(quantize, str) else list(quantize)
    for name in formats:
        if name not in FORMATS:
            raise ConfigError(f"format: expected some of {list(FORMATS)}, got {name!r}")
    for mode in quantize:
        if mode not in MODES:
            raise ConfigError(f"quantize: expected some of {list(MODES)}, got {mode!r}")
    limits = dict(DEFAULT_THRESHOLDS, **(thresholds or {}))
    info = read_model_dir(model_dir)
    seq_len = check_seq_len(info.seq_len if seq_len is None else seq_len, info.config)
    spec = registry.spec(info.task)
    model = spec.export_model(load_model(model_dir))  # a pre-trained model exports its encoder
    require_space(out, _expected_bytes(model, formats, quantize, out))
    task_name = spec.exports
    if spec.vectors:
        limits = {**DEFAULT_COSINE_THRESHOLDS, **limits}
    # Set up with the options it was fine-tuned with (QA windows, answer rules...).
    task = model_dir_task(info) if spec.task is not None else None
    labels = info.labels or None
    tokenizer = info.tokenizer()

    # What the artifacts are checked on.
    data = features = reference = None
    if task is not None:
        eval = eval or (info.metrics.get("eval") or {}).get("file")
        if not eval and not spec.vectors:  # an embedder without one is checked on EMBED_TEXTS
            raise DataError(f"{model_dir}: no evaluation file to verify the export with: pass --eval FILE")
    if task is not None and eval:
        data = _head(task.read(eval, split="eval"), eval_size)
        features = task.features(data, tokenizer, labels, seq_len)
        reference = _as_dict(predict_arrays(model, model_inputs(features), 64))
        if pair is None:
            pair = task.takes_pair(data)
    else:
        features = {k: np.asarray(v) for k, v in tokenizer(_plain_texts(task_name), seq_len=seq_len).items()}
        reference = _as_dict(predict_arrays(model, model_inputs(features), 64))
    # What the full-integer files are calibrated on, read before the long work: a file the user
    # names must exist and parse (one-line error); the training file metrics.json names is used
    # when it is still there, else the eval rows are.
    calibration_data = None
    if task is not None and "tflite" in formats and any(mode in INTEGER_MODES for mode in quantize):
        train = (info.metrics.get("train") or {}).get("file")
        source = calibration or (train if train and os.path.exists(train) else None)
        if source:
            calibration_data = _head(task.read(source, split="eval"), calibration_size)

    out = os.path.abspath(os.fspath(out))
    # Built aside and moved into place only when every check passed.
    with output_dir(out, "export") as work:
        if output_kind(out) == "export" and os.path.isdir(os.path.join(out, "serving")):
            shutil.copytree(os.path.join(out, "serving"), os.path.join(work, "serving"))
        verifier = Verifier(work, features, reference, data=data, task=task, labels=labels, runs=latency_runs,
                            vectors=spec.vectors)
        rows = [verifier.keras_row(model)]
        teacher = teacher_row(info, spec, verifier, model)  # a distilled student's, beside it in the report
        with open(os.path.join(work, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(info.vocab) + "\n")
        with open(os.path.join(work, "labels.txt"), "w", encoding="utf-8") as f:
            f.write("".join(f"{x}\n" for x in (labels or [])))
        if "savedmodel" in formats:
            progress("SavedModel ...")
            rows.append(_savedmodel(work, version, model, tokenizer, task_name, seq_len, pair, verifier))
        if "tflite" in formats:
            # MediaPipe Tasks metadata in each file, checked on the eval texts (kbert/export/metadata.py).
            metadata = ExportMetadata(task_name, model, tokenizer, info.vocab, labels, info.lowercase, pair,
                                      seq_len, task.serving_texts(data)["text"] if data is not None
                                      else _plain_texts(task_name))
            rows += _tflite(work, model, seq_len, quantize, calibration_data, calibration_size, tokenizer, verifier,
                            progress, metadata)
        if "onnx" in formats:
            progress("ONNX ...")
            rows += _onnx(work, model, quantize, verifier, progress)
        failures = check_rows(rows, limits)
        report = {
            "model_dir": os.fspath(model_dir), "task": task_name, "seq_len": seq_len,
            "eval": {"file": os.fspath(eval) if eval else None, "examples": len(data) if data is not None else 0},
            "thresholds": limits, "artifacts": rows, "passed": not failures, "failures": failures,
        }
        if teacher is not None:
            report["teacher"] = teacher
        card = {
            "task": task_name, "seq_len": seq_len, "lowercase": info.lowercase, "labels": labels or [],
            "tflite_inputs": {k: f"int32 [1, {seq_len}]" for k in TFLITE_INPUTS},
            "tflite_outputs": sorted(ids_outputs(model, reference)), "savedmodel_signatures": ["serving_default", "ids"],
            "quantization": {r["artifact"]: QUANTIZATION[r["artifact"]] for r in rows
                             if r["artifact"] in QUANTIZATION},
            "metrics": {r["artifact"]: r.get("metric") for r in rows},
        }
        if spec.vectors:
            card["savedmodel_signatures"].append("similarity")
        write_json(os.path.join(work, "model_card.json"), card)
        write_json(os.path.join(work, "report.json"), report)
        with open(os.path.join(work, "report.md"), "w", encoding="utf-8") as f:
            f.write(report_markdown(report))
        if failures:
            raise ExportError("; ".join(failures) + " (nothing written)")
    return report


_TFLITE_SHARE = {"float32": 1.0, "float16": 0.5, "dynamic": 0.25, "int8": 0.25, "int16x8": 0.25}


def _expected_bytes(model, formats, quantize, out):
    """About what an export writes: the float32 weights once per SavedModel,
    ONNX and float32 TFLite, less per quantized TFLite, plus the SavedModel
    versions an existing export keeps."""
    share = ("savedmodel" in formats) + ("onnx" in formats) * (1 + 0.25 * ("dynamic" in quantize))
    if "tflite" in formats:
        share += sum(_TFLITE_SHARE.get(mode, 1.0) for mode in quantize)
    return int(4 * model.count_params() * share) + _size(os.path.join(os.fspath(out), "serving"))


def _head(data, n):
    if n is None:
        return data
    from kbert.data.classification import TextData

    if isinstance(data, TextData):
        cut = (lambda v: None if v is None else list(v)[:n])
        return TextData(cut(data.texts), cut(data.pairs), cut(data.labels), cut(data.lines), data.source)
    return data[:n]


def _as_dict(outputs):
    return outputs if isinstance(outputs, dict) else {"logits": outputs}


def _savedmodel(work, version, model, tokenizer, task_name, seq_len, pair, verifier):
    from kbert.export.savedmodel import serving_archive
    from kbert.tasks.base import model_inputs

    serving = os.path.join(work, "serving")
    os.makedirs(serving, exist_ok=True)
    taken = [int(d) for d in os.listdir(serving) if d.isdigit()]
    version = int(version) if version is not None else max(taken, default=0) + 1
    path = os.path.join(serving, str(version))
    shutil.rmtree(path, ignore_errors=True)
    task, data, features, reference = verifier.task, verifier.data, verifier.features, verifier.reference
    serving_archive(model, tokenizer, task or task_name, verifier.labels, seq_len, pair=pair).write_out(
        path, verbose=False)
    texts = task.serving_texts(data, pair) if data is not None else {"text": _plain_texts(task_name)}
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(os.path.join(tmp, "inputs.npz"), **model_inputs(features))
        write_json(os.path.join(tmp, "texts.json"), texts)
        signatures = []
        if verifier.vectors:
            signatures = [os.path.join(tmp, "signatures.json")]
            write_json(signatures[0], _vector_signature_inputs(texts["text"]))
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_savedmodel.py")
        result = subprocess.run([sys.executable, script, path, os.path.join(tmp, "inputs.npz"),
                                 os.path.join(tmp, "texts.json"), os.path.join(tmp, "out.npz"), str(verifier.runs),
                                 *signatures], capture_output=True, text=True)
        if result.returncode != 0:
            raise ExportError(f"{path}: the SavedModel failed in a fresh TensorFlow process: "
                              f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ''}")
        with np.load(os.path.join(tmp, "out.npz")) as z:
            out = {k: z[k] for k in z.files}
    row = verifier.row("savedmodel", path, {k: out[k] for k in reference}, round(float(out["latency_ms"]), 2))
    # The raw-string signature must agree with the Keras model on the same texts.
    text_logits = {k: out["text." + k] for k in reference if "text." + k in out}
    if verifier.vectors:
        row.update(_vector_signature_fields(out, reference, len(texts["text"])))
    elif text_logits:
        texts_at, rows_at = _one_window(features, len(next(iter(text_logits.values()))))
        row["text_max_abs_diff"], row["text_agreement"] = compare(
            {k: v[texts_at] for k, v in text_logits.items()}, {k: v[rows_at] for k, v in reference.items()},
            {k: v[rows_at] for k, v in features.items() if k == "padding_mask"})
    # Tasks whose signature post-processes (QA answers) check it against Python prediction.
    if task is not None:
        served = {k[len("text."):]: v for k, v in out.items() if k.startswith("text.")}
        agreement = task.serving_agreement(data, features, reference, served)
        if agreement is not None:
            row["answer_agreement"] = agreement
    return row


def _one_window(features, n_texts):
    """(text positions, feature rows) of the inputs that fit in one window: a
    NER sentence or QA context split into several windows has no single
    raw-text answer to compare row by row."""
    key = next((k for k in ("sentence_index", "example_index") if k in features), None)
    if key is None:
        return np.arange(n_texts), np.arange(n_texts)
    owner = np.asarray(features[key])
    counts = np.bincount(owner, minlength=n_texts)
    texts = np.flatnonzero(counts == 1)
    first_row = {int(o): i for i, o in reversed(list(enumerate(owner)))}
    return texts, np.array([first_row[int(t)] for t in texts], dtype=int)


def _tflite(work, model, seq_len, modes, calibration_data, calibration_size, tokenizer, verifier, progress,
            metadata=None):
    from kbert.export.tflite import convert, inspect_ops, write_ids_model
    from kbert.tasks.base import model_inputs

    # The files return the task's TFLite outputs (a classifier's probabilities).
    checked = dataclasses.replace(verifier, reference={k: np.asarray(v) for k, v in
                                                       ids_outputs(model, verifier.reference).items()})

    rows = []
    directory = os.path.join(work, "tflite")
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        calib = rows_for_calibration = None
        if any(mode in INTEGER_MODES for mode in modes):
            calib = os.path.join(tmp, "calibration.npz")
            rows_for_calibration = _calibration(verifier, calibration_data, calibration_size, tokenizer, seq_len)
            np.savez(calib, **rows_for_calibration)
        # One SavedModel for the float modes, one per full-integer mode (its graph, see quantized_graph).
        saved, plans = {}, {}
        for mode in modes:
            graph = mode if mode in INTEGER_MODES else "float"
            if graph not in saved:
                saved[graph] = os.path.join(tmp, f"ids_model_{graph}")
                plans[graph] = write_ids_model(model, seq_len, saved[graph], mode, rows_for_calibration)
            progress(f"TFLite {mode} ...")
            path = os.path.join(directory, f"model_{mode}.tflite")
            try:
                convert(saved[graph], path, mode, calib)
            except RuntimeError as e:
                raise ExportError(str(e)) from None
            mediapipe = metadata(path) if metadata is not None else None
            out, latency = _run_tflite(path, model_inputs(verifier.features), verifier.runs)
            rows.append(checked.row(f"tflite_{mode}", path, out, latency))
            # What the file computes in, read back from it (not assumed from the mode).
            ops = inspect_ops(path)
            rows[-1].update(integer_only=ops["integer_only"], activations=ops["activations"],
                            float_ops=ops["float_ops"])
            if plans[graph] is not None:
                rows[-1]["quantized_graph"] = plans[graph]
            if mediapipe is not None:
                rows[-1]["mediapipe"] = mediapipe
    return rows


def _calibration(verifier, data, size, tokenizer, seq_len):
    """Model inputs of the first `size` examples of `data` (the task's
    training data, read), else of the eval ones."""
    from kbert.tasks.base import model_inputs

    if verifier.task is not None and data is not None:
        data = _head(data, size)
        return model_inputs(verifier.task.features(data, tokenizer, verifier.labels, seq_len))
    return {k: v[:size] for k, v in model_inputs(verifier.features).items()}


def _run_tflite(path, inputs, runs):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=2)
    runner = interpreter.get_signature_runner("serving_default")
    feed = {name: inputs[key].astype(np.int32) for name, key in TFLITE_INPUTS.items()}
    results = {}
    for i in range(len(feed["ids"])):
        out = runner(**{k: v[i:i + 1] for k, v in feed.items()})
        for k, v in out.items():
            results.setdefault(k, []).append(v)
    one = {k: v[:1] for k, v in feed.items()}
    return {k: np.concatenate(v) for k, v in results.items()}, latency_ms(lambda: runner(**one), runs)


def _onnx(work, model, quantize, verifier, progress):
    """onnx/model.onnx (tidied and fused for onnxruntime) and, with "dynamic"
    in `quantize`, onnx/model_dynamic.onnx; one verified row each."""
    from kbert.export import onnx

    directory = os.path.join(work, "onnx")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "model.onnx")
    raw = os.path.join(directory, "tf2onnx.onnx")
    onnx.export_onnx(model, raw)
    optimizer = onnx.optimize(raw, path)
    os.remove(raw)
    rows = [dict(_run_onnx("onnx", path, verifier), optimizer=optimizer)]
    if "dynamic" in quantize:
        progress("ONNX dynamic ...")
        quantized = os.path.join(directory, "model_dynamic.onnx")
        onnx.quantize(path, quantized)
        rows.append(_run_onnx("onnx_dynamic", quantized, verifier))
    return rows


def _run_onnx(name, path, verifier):
    from kbert.export.onnx import session as onnx_session
    from kbert.tasks.base import model_inputs

    session = onnx_session(path)
    names = [o.name for o in session.get_outputs()]
    inputs = {k: v.astype(np.int32) for k, v in model_inputs(verifier.features).items()}
    results = {}
    for start in range(0, len(inputs["token_ids"]), 64):
        values = session.run(names, {k: v[start:start + 64] for k, v in inputs.items()})
        for k, v in zip(names, values):
            results.setdefault(k, []).append(v)
    out = {k: np.concatenate(v) for k, v in results.items()}
    one = {k: v[:1] for k, v in inputs.items()}
    return verifier.row(name, path, out, latency_ms(lambda: session.run(names, one), verifier.runs))


def report_markdown(report):
    if any(r.get("min_cosine") is not None for r in report["artifacts"]):
        return _vector_report_markdown(report)
    lines = [
        f"# Export report: {report['model_dir']} ({report['task']}, seq_len {report['seq_len']})", "",
        f"Verified on {report['eval']['examples']} examples of `{report['eval']['file']}`; "
        "latency: batch 1, median of the runs, 2 threads.", "",
        "| artifact | size (MB) | metric | label agreement | max abs diff | latency (ms) | integer-only |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["artifacts"]:
        size = f"{r['bytes'] / 1e6:.1f}" if r["bytes"] else "-"
        metric = "-" if r["metric"] is None else f"{r['metric']:.2f}"
        lines.append(f"| {r['artifact']} | {size} | {metric} | {100 * r['agreement']:.2f}% | "
                     f"{r['max_abs_diff']:.2e} | {r['latency_ms']} | {integer_only_cell(r)} |")
    lines += _teacher_lines(report.get("teacher"), report["artifacts"][0])
    lines += _metadata_lines(report["artifacts"])
    lines += ["", "passed" if report["passed"] else "FAILED: " + "; ".join(report["failures"]), ""]
    return "\n".join(lines)


def _metadata_lines(rows):
    """Why the TFLite files carry no MediaPipe metadata, when none does (apps on MediaPipe Tasks need it)."""
    reasons = {(r.get("mediapipe") or {}).get("reason") for r in rows if r["artifact"].startswith("tflite_")}
    written = any((r.get("mediapipe") or {}).get("metadata") for r in rows)
    if written or len(reasons) != 1 or None in reasons:
        return []
    return ["", f"MediaPipe metadata: not written ({reasons.pop()})."]


def _teacher_lines(teacher, keras):
    """The teacher's row in the table and a line comparing it with the student (`teacher_row`)."""
    if teacher is None:
        return []
    if teacher.get("note"):
        return ["", f"Distilled from `{teacher['model_dir']}`: {teacher['note']}."]
    metric = "-" if teacher["metric"] is None else f"{teacher['metric']:.2f}"
    lines = [f"| teacher (Keras) | - | {metric} | {100 * teacher['agreement']:.2f}% | - | {teacher['latency_ms']} | - |",
             "", f"Distilled from `{teacher['model_dir']}`: the teacher's label agreement is with the student; "
             f"the student has {teacher['student_parameters']:,} parameters, "
             f"{teacher['student_parameters'] / teacher['parameters']:.2f}x the teacher's {teacher['parameters']:,}"]
    if teacher["metric"] and keras["metric"] is not None:
        lines[-1] += f", keeps {100 * keras['metric'] / teacher['metric']:.1f}% of its metric"
    if teacher["latency_ms"] and keras["latency_ms"]:
        lines[-1] += f", Keras batch-1 latency {keras['latency_ms'] / teacher['latency_ms']:.2f}x"
    lines[-1] += "."
    return lines


def integer_only_cell(row):
    """The report's integer-only column: "yes (int8)" / "no (float32: FULLY_CONNECTED x38, ...)" for a
    TFLite file (from `kbert.export.tflite.inspect_ops`), "-" for other artifacts."""
    if row.get("integer_only") is None:
        return "-"
    if row["integer_only"]:
        return f"yes ({row['activations']})"
    top = sorted(row["float_ops"].items(), key=lambda item: -item[1])[:3]
    return f"no ({row['activations']}; float: " + ", ".join(f"{op} x{n}" for op, n in top) + \
        (", ..." if len(row["float_ops"]) > 3 else "") + ")"


# --- vector models (embeddings): checked by cosine to the Keras vectors -------------------------------


def _plain_texts(task_name):
    """What a model without evaluation data is checked on."""
    from kbert.tasks import registry

    return EMBED_TEXTS if registry.spec(task_name).vectors else ENCODER_TEXTS


_SIMILARITY_PAIRS = 64


def _vector_signature_inputs(texts):
    """The `similarity` signature's inputs: each text with the next one."""
    pairs = list(zip(texts, texts[1:]))[:_SIMILARITY_PAIRS]
    return {"similarity": {"text": [a for a, _ in pairs], "text_pair": [b for _, b in pairs]}}


def _vector_signature_fields(out, reference, n_texts):
    """The raw-text signatures of an embedder against the Keras vectors:
    `serving_default`'s min cosine, `similarity`'s largest difference from
    the cosine of the Keras vectors of each pair."""
    from kbert.embedding_metrics import pair_cosines
    from kbert.export.verify import cosines

    fields = {}
    served = {k: out["text." + k] for k in reference if "text." + k in out}
    if served:
        fields["text_min_cosine"] = float(cosines(served, {k: v[:n_texts] for k, v in reference.items()}).min())
    if "similarity.similarity" in out:
        vectors = next(iter(reference.values()))
        pairs = min(n_texts - 1, _SIMILARITY_PAIRS)
        expected = pair_cosines(vectors[:pairs], vectors[1:pairs + 1])
        fields["similarity_max_abs_diff"] = float(np.max(np.abs(out["similarity.similarity"] - expected))) \
            if pairs > 0 else 0.0
    return fields


def _vector_report_markdown(report):
    lines = [
        f"# Export report: {report['model_dir']} ({report['task']}, seq_len {report['seq_len']})", "",
        (f"Verified on {report['eval']['examples']} examples of `{report['eval']['file']}`" if report["eval"]["file"]
         else f"Verified on the {len(EMBED_TEXTS)} built-in sentences")
        + "; cosine of each artifact's vectors to the Keras model's; latency: batch 1, median of the runs, "
        "2 threads.", "",
        "| artifact | size (MB) | Recall@10 | metric | min cosine | mean cosine | latency (ms) | integer-only |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["artifacts"]:
        size = f"{r['bytes'] / 1e6:.1f}" if r["bytes"] else "-"
        recall = "-" if r.get("recall@10") is None else f"{r['recall@10']:.2f}"
        metric = "-" if r["metric"] is None else f"{r['metric']:.2f}"
        lines.append(f"| {r['artifact']} | {size} | {recall} | {metric} | {r['min_cosine']:.6f} | "
                     f"{r['mean_cosine']:.6f} | {r['latency_ms']} | {integer_only_cell(r)} |")
    lines += ["", "passed" if report["passed"] else "FAILED: " + "; ".join(report["failures"]), ""]
    return "\n".join(lines)
