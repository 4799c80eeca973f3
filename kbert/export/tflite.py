"""TFLite (LiteRT) models for Android: ids in, the task's outputs out (a
classifier's `probabilities`, see `ids_outputs`), builtin ops only.

The Keras model is wrapped in a `keras.export.ExportArchive` whose one
endpoint takes the TFLite Task Library's input names (`ids`, `mask`,
`segment_ids`: int32 `[1, seq_len]`), written as a SavedModel and converted
with `TFLiteConverter.from_saved_model`: `from_keras_model` does not work with
Keras 3 and a plain `tf.Module` wrapper converts to NaN logits. Each
conversion runs in a child process because the converter leaks memory per
call. Only TFLite builtin ops are allowed: a model that would need Flex (TF)
ops fails with the op names instead of producing a file an app cannot run.

Modes:
    float32: as trained.
    float16: weights stored as float16 (computed in float32 on CPU).
    dynamic: dynamic-range int8: int8 weights, activations quantized on the fly
        (float ops).
    int8: integer-only: int8 weights (a scale per channel) and int8
        activations calibrated on `calibration` examples, converted with
        `TFLITE_BUILTINS_INT8` only. Every op computes on integers: the int32
        ids index int8 embedding tables, and the one float op is the final
        DEQUANTIZE that hands the outputs back as float32 (the interface apps
        read; an accelerator leaves that boundary op to the CPU). Converted
        from `kbert.export.quantized_graph`, the same function as the Keras
        model written so that per-tensor int8 activations hold BERT's outlier
        channels (see there); the attention matmuls' second operands get zero
        point 0, the form LiteRT's XNNPACK delegate runs
        (`symmetric_matmul_operands`).
    int16x8: integer-only with int16 activations and int8 weights (TFLite's
        16x8 mode, `EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8`),
        from the same graph: finer activations where an accelerator has int16
        kernels.
`inspect_ops` reads a file's op list and tensor types back with the
interpreter; the export report states from it whether each file is
integer-only.
"""

import collections
import json
import os
import subprocess
import sys

MODES = ("float32", "float16", "dynamic", "int8", "int16x8")
# What an export writes unless asked. The integer-only modes are opt-in: they
# are for integer accelerators (NPU, DSP, Edge TPU); on a CPU int8 is 1.4x
# dynamic range's latency, and on MiniLM CoNLL NER (500 sentences) it measured
# 78.21 F1 vs Keras' 79.32, past the 1-point gate that would then fail a
# default export (SST-2: 83.8 vs 84.6; benchmarks/README.md, int8_tflite.py);
# 16x8 runs on CPU with LiteRT's reference kernels, 30x float32's time.
DEFAULT_MODES = ("float32", "float16", "dynamic")
# Full-integer modes: the activation type each is converted with.
INTEGER_MODES = {"int8": "int8", "int16x8": "int16"}
TFLITE_INPUTS = {"ids": "token_ids", "mask": "padding_mask", "segment_ids": "segment_ids"}


def ids_archive(model, seq_len):
    """An ExportArchive whose `serving_default` takes `ids`, `mask`, `segment_ids`."""
    import keras
    import tensorflow as tf

    from kbert.export.savedmodel import call_model

    archive = keras.export.ExportArchive()
    archive.track(model)

    def fn(ids, mask, segment_ids):
        outputs = call_model(model, {"token_ids": ids, "segment_ids": segment_ids, "padding_mask": mask})
        return ids_outputs(model, outputs)

    specs = [tf.TensorSpec([1, seq_len], tf.int32, name=n) for n in TFLITE_INPUTS]
    archive.add_endpoint("serving_default", fn, input_signature=specs)
    return archive


def write_ids_model(model, seq_len, out, mode="float32", calibration_rows=None):
    """Write the ids-in SavedModel that `mode` is converted from to `out`.

    Args:
        model: the Keras model exported.
        seq_len: the fixed length of the TFLite inputs.
        out: SavedModel directory.
        mode: one of `MODES`; the full-integer modes (`INTEGER_MODES`) are
            traced through `kbert.export.quantized_graph`, the others as the
            model is.
        calibration_rows: dict of int arrays `token_ids`, `segment_ids`,
            `padding_mask` `[n, seq_len]` (full-integer modes: the graph's
            constants are measured on them).

    Returns:
        The quantized graph's plan summary (full-integer modes), else None.
    """
    if mode not in INTEGER_MODES:
        ids_archive(model, seq_len).write_out(out, verbose=False)
        return None
    from kbert.export import quantized_graph

    if calibration_rows is None or not len(calibration_rows["token_ids"]):
        raise ValueError(f"{mode}: calibration rows are needed")
    plan = quantized_graph.measure(model, calibration_rows)
    with quantized_graph.integer_graph(model, plan, INTEGER_MODES[mode]):
        ids_archive(model, seq_len).write_out(out, verbose=False)
    return plan.summary()


def ids_outputs(model, outputs):
    """The TFLite file's outputs from the model's raw `outputs` (a dict of
    tensors or arrays): what the task's serving module makes of them
    (`ids_outputs` there; classify: `probabilities`), else unchanged."""
    from kbert.tasks import registry

    post = getattr(registry.spec_of(model).serving_module(), "ids_outputs", None)
    return post(outputs) if post is not None else outputs


def convert(saved_model, out, mode, calibration=None):
    """Convert an ids-in SavedModel to `out` in a child process.

    Args:
        saved_model: directory written from `ids_archive`.
        out: .tflite path.
        mode: one of `MODES`.
        calibration: .npz with `token_ids`, `segment_ids`, `padding_mask`
            `[n, seq_len]` (int8 only).
    """
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    cmd = [sys.executable, "-m", "kbert.export.tflite", saved_model, out, mode, calibration or ""]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(_failure(mode, result.returncode, result.stderr))


_SUMMARY_CHARS = 300


def _failure(mode, returncode, stderr):
    """One line for a failed conversion. The converter's whole output (often a
    page of TensorFlow traceback) goes to a log file the line names, and to
    stderr with `kbert --verbose`."""
    import tempfile

    from kbert.runtime import verbose_requested

    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    ours = [line[len("kbert-convert: "):] for line in lines if line.startswith("kbert-convert:")]
    if ours:
        summary = ours[-1]
    elif lines:
        summary = f"{mode}: TFLite conversion failed: {lines[-1]}"
    else:
        summary = f"{mode}: the TFLite converter process ended with code {returncode} and no message"
    if len(summary) > _SUMMARY_CHARS:
        summary = summary[:_SUMMARY_CHARS] + " ..."
    fd, log = tempfile.mkstemp(prefix=f"kbert-tflite-{mode}-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(stderr)
    if verbose_requested():
        sys.stderr.write(stderr)
    return f"{summary} (converter output: {log})"


def _convert_here(saved_model, out, mode, calibration):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode in INTEGER_MODES:
        _integer_converter(converter, mode, calibration)
    try:
        blob = _convert_int8(converter) if mode == "int8" else converter.convert()
    except Exception as e:  # the converter raises ConverterError with the op list
        message = " ".join(str(e).split())
        ops = "int8 builtin ops" if mode == "int8" else ("16x8 builtin ops" if mode == "int16x8" else "builtin ops")
        print(f"kbert-convert: {mode}: TFLite conversion failed with {ops} only: {message[:1500]}", file=sys.stderr)
        sys.exit(1)
    with open(out, "wb") as f:
        f.write(blob)
    print(json.dumps({"mode": mode, "bytes": len(blob)}))


def _integer_converter(converter, mode, calibration):
    """Full-integer settings: calibrated on the .npz rows, integer builtins
    only (weights per channel, TFLite's default), float32 outputs."""
    import numpy as np
    import tensorflow as tf

    with np.load(calibration) as z:
        rows = {name: z[key].astype(np.int32) for name, key in TFLITE_INPUTS.items()}

    def representative():
        for i in range(len(rows["ids"])):
            yield {name: values[i:i + 1] for name, values in rows.items()}

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8 if mode == "int8"
        else tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    # The ids stay int32 (they index the tables); outputs come back as float32
    # through one DEQUANTIZE, so apps read every mode alike.
    converter.inference_output_type = tf.float32


def _convert_int8(converter):
    """The int8 file: calibrate, give every attention matmul's second operand
    a range symmetric about 0 (`symmetric_matmul_operands`), then quantize
    with TFLite's MLIR quantizer, the steps `converter.convert()` takes in one
    go (and `tf.lite.experimental.QuantizationDebugger` in two, as here)."""
    import tensorflow as tf
    from tensorflow.lite.python import convert as lite_convert
    from tensorflow.lite.tools import flatbuffer_utils

    converter._experimental_calibrate_only = True
    model = flatbuffer_utils.convert_bytearray_to_object(converter.convert())
    symmetric_matmul_operands(model)
    calibrated = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    return lite_convert.mlir_quantize(calibrated, input_data_type=tf.float32, output_data_type=tf.float32)


# Ops whose output is quantized as their input (the quantizer gives both one scale).
_SAME_SCALE_OPS = ("RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS")


def symmetric_matmul_operands(model):
    """Widen the calibrated range of each BATCH_MATMUL's second operand (and
    of the reshapes and transposes it comes through) to [-128 s, 127 s], so
    that the int8 tensor's zero point is 0.

    Why: LiteRT's XNNPACK delegate runs an int8 BATCH_MATMUL only when that
    operand's zero point is 0; any other falls back to TFLite's reference
    kernel. In the SST-2 MiniLM int8 file (seq 64, 1 thread) 11 of its 12
    attention matmuls did, 35% of its time (perf); with this, all 12 run in
    XNNPACK and the file took 3.9 ms instead of 7.2 (2 threads), accuracy
    83.8 instead of 83.0 (benchmarks/README.md, "Integer-only int8").

    Args:
        model: a calibrated TFLite model as a flatbuffer object
            (`flatbuffer_utils.convert_bytearray_to_object`), edited in place.

    Returns:
        The number of tensor ranges widened.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    widened = 0
    for graph in model.subgraphs:
        name = {id(op): flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) for op in graph.operators}
        producer = {t: op for op in graph.operators for t in op.outputs}
        for op in graph.operators:
            if name[id(op)] != "BATCH_MATMUL":
                continue
            chain, tensor = [], op.inputs[1]
            while True:
                chain.append(graph.tensors[tensor].quantization)
                source = producer.get(tensor)
                if source is None or name[id(source)] not in _SAME_SCALE_OPS:
                    break
                tensor = source.inputs[0]
            ranges = [q for q in chain if q is not None and q.min is not None and len(q.min) == 1]
            if not ranges:  # a constant operand: its weights are quantized symmetric already
                continue
            top = max(max(abs(float(q.min[0])), abs(float(q.max[0]))) for q in ranges)
            for q in ranges:
                q.min, q.max = [-top * 128.0 / 127.0], [top]
                widened += 1
    return widened


_FLOAT_TYPES = ("float16", "float32", "float64")


def inspect_ops(path):
    """What a .tflite file computes in, read back with the interpreter (its
    op list and the types of every op's tensors), not assumed from the mode.

    Returns:
        A dict: `integer_only` (no op reads or writes a float tensor, apart
        from a DEQUANTIZE that writes a model output or a QUANTIZE that reads
        a model input), `float_ops` (op name -> count of the other ops that
        do), `boundary` (those DEQUANTIZE / QUANTIZE ops), `activations`
        (the element type most op outputs have, int32/bool index tensors
        aside) and `ops` (op name -> count).
    """
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=os.fspath(path))
    dtype = {t["index"]: np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    inputs = {d["index"] for d in interpreter.get_input_details()}
    outputs = {d["index"] for d in interpreter.get_output_details()}
    ops, float_ops, boundary, written = (collections.Counter() for _ in range(4))
    for op in interpreter._get_ops_details():
        name = op["op_name"]
        ins, outs = [i for i in op["inputs"] if i >= 0], [i for i in op["outputs"] if i >= 0]
        ops[name] += 1
        for i in outs:
            if dtype[i] not in ("int32", "int64", "bool"):
                written[dtype[i]] += 1
        if not any(dtype[i] in _FLOAT_TYPES for i in ins + outs):
            continue
        if (name == "DEQUANTIZE" and set(outs) <= outputs) or (name == "QUANTIZE" and set(ins) <= inputs):
            boundary[name] += 1
        else:
            float_ops[name] += 1
    return {"integer_only": not float_ops, "float_ops": dict(float_ops), "boundary": dict(boundary),
            "activations": written.most_common(1)[0][0] if written else None, "ops": dict(ops)}


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _convert_here(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] or None)
