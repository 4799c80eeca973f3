"""Full-integer TFLite (int8, int16x8): the rewritten graph equals the Keras
model, the files are integer-only when read back, and the report says so."""

import numpy as np
import pytest
from conftest import random_inputs
from training.test_finetune import encoder_dir, sentiment_rows, write_tsv  # noqa: F401

from kbert.export import export
from kbert.training.finetune import finetune


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, encoder_dir):  # noqa: F811
    directory = tmp_path_factory.mktemp("int8")
    train = write_tsv(directory / "train.tsv", sentiment_rows(256, 0))
    dev = write_tsv(directory / "dev.tsv", sentiment_rows(64, 1))
    finetune("classify", encoder_dir, train, directory / "model", eval=dev, epochs=8, batch_size=16, lr=2e-3,
             seq_len=16, progress=False)
    return str(directory / "model")


def _tiny_classifier(tiny_config, outlier=0.0):
    """A random tiny classifier; `outlier` > 0 makes one residual channel that
    large (as BERT's feed-forward output has)."""
    import keras

    from kbert.models import BertClassifier, BertEncoder

    keras.utils.set_random_seed(1)
    model = BertClassifier(BertEncoder(tiny_config), num_classes=3)
    if outlier:
        for block in model.encoder.transformer_layers:
            bias = np.asarray(block.output_dense.bias).copy()
            bias[3] = outlier
            block.output_dense.bias.assign(bias)
    return model


def test_quantized_graph_equals_the_keras_model(tiny_config):
    from kbert.export import quantized_graph

    model = _tiny_classifier(tiny_config, outlier=60.0)
    rows = random_inputs(tiny_config, batch=6, seq_len=12)
    plan = quantized_graph.measure(model, rows)
    # The outlier channel is rescaled in the feed-forward sums, whose variance then spans tokens.
    assert plan.norms["0/output"].outliers == 1 and plan.norms["0/output"].d[3] > 1
    assert plan.norms["0/attention"].outliers == 0
    expected = np.asarray(model(rows, training=False))
    for activations in quantized_graph.ACTIVATIONS:
        with quantized_graph.integer_graph(model, plan, activations):
            got = np.asarray(model(rows, training=False))
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    # Outside the context the model is its own again.
    assert "call" not in model.encoder.embeddings.__dict__
    np.testing.assert_array_equal(np.asarray(model(rows, training=False)), expected)


def test_two_branch_rsqrt_equals_one_branch(tiny_config):
    from kbert.export import quantized_graph

    model = _tiny_classifier(tiny_config, outlier=60.0)
    rows = random_inputs(tiny_config, batch=6, seq_len=12)
    plan = quantized_graph.measure(model, rows)
    for norm in plan.norms.values():
        norm.two_branch = True
    expected = np.asarray(model(rows, training=False))
    with quantized_graph.integer_graph(model, plan, "int8"):
        got = np.asarray(model(rows, training=False))
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_both_masks_are_the_layers_mask():
    import tensorflow as tf

    from kbert.export.quantized_graph import _arithmetic_mask, _select_mask
    from kbert.layers.transformer import mask_scores

    rng = np.random.default_rng(0)
    scores = rng.normal(0, 8, (2, 3, 7, 7)).astype("float32")
    scores[0, :, :, 5:] += 50.0  # padded keys above the floor: put on it, as the layer does
    mask = np.array([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]], "int32")
    expected = np.asarray(mask_scores(tf.constant(scores), tf.constant(mask)))
    for fn in (_select_mask, _arithmetic_mask):
        np.testing.assert_allclose(fn(tf.constant(scores), tf.constant(mask)).numpy(), expected, atol=1e-4)


def _tensor_types(path):
    """(op name, [input dtypes], [output dtypes], writes a model output) per op, from the interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    dtype = {t["index"]: np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    outputs = {d["index"] for d in interpreter.get_output_details()}
    return interpreter, [(op["op_name"], [dtype[i] for i in op["inputs"] if i >= 0],
                          [dtype[i] for i in op["outputs"] if i >= 0], set(op["outputs"]) <= outputs)
                         for op in interpreter._get_ops_details()]


def test_int8_and_16x8_files_are_integer_only_and_the_report_says_so(classifier, tmp_path):
    out = tmp_path / "export"
    report = export(classifier, out, formats=["tflite"], quantize=["float32", "dynamic", "int8", "int16x8"],
                    latency_runs=2, progress=lambda m: None)
    assert report["passed"], report["failures"]
    rows = {r["artifact"]: r for r in report["artifacts"]}
    keras_metric = rows["keras"]["metric"]
    for mode, activations in (("int8", "int8"), ("int16x8", "int16")):
        row = rows[f"tflite_{mode}"]
        assert row["integer_only"] is True and row["float_ops"] == {} and row["activations"] == activations
        assert keras_metric - row["metric"] <= 1.0
        interpreter, ops = _tensor_types(out / "tflite" / f"model_{mode}.tflite")
        # Read back independently: the one float tensor is the output of the final DEQUANTIZE.
        floats = [(name, writes_output) for name, ins, outs, writes_output in ops
                  if any(t.startswith("float") for t in ins + outs)]
        assert floats == [("DEQUANTIZE", True)], floats
        assert {t for _, _, outs, _ in ops for t in outs} <= {activations, "int32", "bool", "float32"}
        assert any(name == "FULLY_CONNECTED" for name, *_ in ops)
        # Attention matmuls whose second operand has zero point 0: the form XNNPACK runs.
        zero_points = {t["index"]: t["quantization_parameters"]["zero_points"].tolist()
                       for t in interpreter.get_tensor_details()}
        matmuls = [op["inputs"][1] for op in interpreter._get_ops_details() if op["op_name"] == "BATCH_MATMUL"]
        assert len(matmuls) >= 2 and all(zero_points[t] == [0] for t in matmuls), \
            [zero_points[t] for t in matmuls]
        # The interface stays the app's: int32 [1, seq_len] inputs bound by name.
        inputs = {name: (np.dtype(d["dtype"]).name, [int(n) for n in d["shape"]])
                  for name, d in interpreter.get_signature_runner("serving_default").get_input_details().items()}
        assert inputs == {n: ("int32", [1, 16]) for n in ("ids", "mask", "segment_ids")}
    assert rows["tflite_float32"]["integer_only"] is False and rows["tflite_float32"]["activations"] == "float32"
    assert rows["tflite_dynamic"]["integer_only"] is False
    assert rows["tflite_dynamic"]["float_ops"].get("FULLY_CONNECTED", 0) > 0
    cells = {line.split("|")[1].strip(): line.split("|")[-2].strip()
             for line in (out / "report.md").read_text().splitlines() if line.startswith("| ")}
    assert cells["artifact"] == "integer-only" and cells["keras"] == "-"
    assert cells["tflite_int8"] == "yes (int8)" and cells["tflite_int16x8"] == "yes (int16)"
    assert cells["tflite_float32"].startswith("no (float32; float: ")
    assert cells["tflite_dynamic"].startswith("no (") and "FULLY_CONNECTED" in cells["tflite_dynamic"]
    # The report keeps what the int8 graph measured (outlier channels, variance branches) per LayerNorm.
    assert set(rows["tflite_int8"]["quantized_graph"]) >= {"embeddings", "0/attention", "0/output"}
