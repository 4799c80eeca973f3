"""Export a model directory to SavedModel (TF Serving), TFLite (Android) and
ONNX, each run in its own runtime on evaluation examples and compared with the
Keras model (`report.json`, `report.md`).

Layout of `out`:
    serving/<version>/      SavedModel: `serving_default` (raw strings) and `ids`
    tflite/model_<mode>.tflite   ids-in, batch 1, fixed seq_len
    onnx/model.onnx         ids-in, dynamic batch and length, fused for onnxruntime
    onnx/model_dynamic.onnx the same with int8 weights (quantize "dynamic")
    vocab.txt, labels.txt, model_card.json, report.json, report.md
"""

from kbert.export.run import DEFAULT_THRESHOLDS, FORMATS, export

__all__ = ["DEFAULT_THRESHOLDS", "FORMATS", "export"]
