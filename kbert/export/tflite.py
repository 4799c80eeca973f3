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
    int8: full integer quantization calibrated on `calibration` examples;
        int32 inputs, float32 outputs (quantized inside).
"""

import json
import os
import subprocess
import sys

MODES = ("float32", "float16", "dynamic", "int8")
TFLITE_INPUTS = {"ids": "token_ids", "mask": "padding_mask", "segment_ids": "segment_ids"}


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
        lines = [line for line in result.stderr.splitlines() if line.startswith("kbert-convert:")]
        raise RuntimeError(lines[-1][len("kbert-convert: "):] if lines else result.stderr[-2000:])


def _convert_here(saved_model, out, mode, calibration):
    import numpy as np
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        with np.load(calibration) as z:
            rows = {name: z[key].astype(np.int32) for name, key in TFLITE_INPUTS.items()}

        def representative():
            for i in range(len(rows["ids"])):
                yield {name: v[i:i + 1] for name, v in rows.items()}

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # Token ids stay int32 (they index the embedding table); the logits
        # come back as float32.
        converter.inference_output_type = tf.float32
    try:
        blob = converter.convert()
    except Exception as e:  # the converter raises ConverterError with the op list
        message = " ".join(str(e).split())
        print(f"kbert-convert: {mode}: TFLite conversion failed with builtin ops only: {message[:1500]}",
              file=sys.stderr)
        sys.exit(1)
    with open(out, "wb") as f:
        f.write(blob)
    print(json.dumps({"mode": mode, "bytes": len(blob)}))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _convert_here(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] or None)
