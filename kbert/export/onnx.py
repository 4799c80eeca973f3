"""ONNX via tf2onnx (opset 17), from the model's ids inputs, dynamic batch and
length; run with onnxruntime. tf2onnx's Python API converts a `tf.function`
(it has no SavedModel entry point)."""

OPSET = 17


def export_onnx(model, path, seq_len=None):
    """Write `model` (a kbert Keras model) to `path` as ONNX; returns the output names."""
    import tensorflow as tf
    import tf2onnx

    from kbert.export.savedmodel import call_model
    from kbert.tasks.base import INPUTS

    specs = [tf.TensorSpec([None, seq_len], tf.int32, name=n) for n in INPUTS]

    @tf.function(input_signature=specs)
    def fn(token_ids, segment_ids, padding_mask):
        out = call_model(model, {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask})
        return {k: tf.identity(v, name=k) for k, v in out.items()}

    proto, _ = tf2onnx.convert.from_function(fn, input_signature=specs, opset=OPSET, output_path=path)
    return [o.name for o in proto.graph.output]
