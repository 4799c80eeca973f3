"""TFLite (LiteRT) models for Android: ids in, logits out, builtin ops only.

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
    dynamic: dynamic-range int8: int8 weights, activations quantized on the fly.
    int8: integer quantization calibrated on `calibration` examples: int8
        weights and activations for the embeddings, every attention and
        feed-forward-in matmul and GELU; int32 inputs, float32 outputs. The
        ops where BERT's activations have outliers stay float32 (`FLOAT_OPS`):
        LayerNorm, the masked softmax, the residual adds and the feed-forward
        output projection. Quantizing those too (plain full-int8) cost 5 to 30
        points of SST-2 accuracy on MiniLM; with them in float the loss is
        within a point (benchmarks/README.md). The split is made with
        `tf.lite.experimental.QuantizationDebugger`'s denylist, TFLite's own
        tool for selective quantization.
"""

import json
import os
import re
import subprocess
import sys

MODES = ("float32", "float16", "dynamic", "int8")
TFLITE_INPUTS = {"ids": "token_ids", "mask": "padding_mask", "segment_ids": "segment_ids"}
# Output tensor names (from the Keras layer names) of the ops int8 keeps float.
FLOAT_OPS = re.compile(
    r"norm(_\d+)?/"  # LayerNorm: embeddings' layer_norm, attention_norm, output_norm
    r"|transformer_layer_\d+(_\d+)?/(add(_\d+)?|Softmax)$"  # mask add, residual adds, softmax
    r"|transformer_layer_\d+(_\d+)?/output(_\d+)?/"  # feed-forward output projection
)


def ids_archive(model, seq_len):
    """An ExportArchive whose `serving_default` takes `ids`, `mask`, `segment_ids`."""
    import keras
    import tensorflow as tf

    from kbert.export.savedmodel import call_model

    archive = keras.export.ExportArchive()
    archive.track(model)

    def fn(ids, mask, segment_ids):
        return call_model(model, {"token_ids": ids, "segment_ids": segment_ids, "padding_mask": mask})

    specs = [tf.TensorSpec([1, seq_len], tf.int32, name=n) for n in TFLITE_INPUTS]
    archive.add_endpoint("serving_default", fn, input_signature=specs)
    return archive


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
    try:
        blob = _int8_model(saved_model, calibration) if mode == "int8" else converter.convert()
    except Exception as e:  # the converter raises ConverterError with the op list
        message = " ".join(str(e).split())
        print(f"kbert-convert: {mode}: TFLite conversion failed with builtin ops only: {message[:1500]}",
              file=sys.stderr)
        sys.exit(1)
    with open(out, "wb") as f:
        f.write(blob)
    print(json.dumps({"mode": mode, "bytes": len(blob)}))


def _int8_model(saved_model, calibration):
    import numpy as np
    import tensorflow as tf

    interpreter = _float_interpreter(saved_model)
    order = [d["name"] for d in interpreter.get_input_details()]
    names = {interpreter._get_tensor_details(i, 0)["name"] for op in interpreter._get_ops_details()
             for i in op["outputs"]}
    keep_float = sorted(n for n in names if FLOAT_OPS.search(n))
    if not keep_float:
        raise RuntimeError("int8: none of the LayerNorm/softmax/residual ops to keep in float was found; "
                           "the layer names changed (see FLOAT_OPS)")
    with np.load(calibration) as z:
        rows = {name: z[key].astype(np.int32) for name, key in TFLITE_INPUTS.items()}

    def representative():  # a list in the interpreter's input order, as the debugger wants
        for i in range(len(rows["ids"])):
            yield [rows[_input_name(name)][i:i + 1] for name in order]

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    # Int8 builtins plus float builtins for the FLOAT_OPS.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    # Token ids stay int32 (they index the embedding table); logits come back float32.
    converter.inference_output_type = tf.float32
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=representative,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=keep_float))
    return debugger.get_nondebug_quantized_model()


def _float_interpreter(saved_model):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return Interpreter(model_content=converter.convert())


def _input_name(tensor_name):
    """`serving_default_ids:0` -> `ids`."""
    name = tensor_name.split(":")[0]
    return name[len("serving_default_"):] if name.startswith("serving_default_") else name


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _convert_here(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] or None)
