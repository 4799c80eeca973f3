"""ONNX: the tidied, onnxruntime-fused graph, its dynamic int8 variant, and
no float32 subnormals in the attention of padded rows (tiny models)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from training.test_finetune import encoder_dir, sentiment_rows, write_tsv  # noqa: F401
from kbert.export.onnx import export_onnx, optimize, session, tidy
from kbert.export.run import DEFAULT_THRESHOLDS
from kbert.export.verify import check_rows
from kbert.training.finetune import finetune

onnx = pytest.importorskip("onnx")

TINY = np.finfo(np.float32).tiny


def padded_batch(vocab_size, seq_len=32):
    rng = np.random.default_rng(0)
    lengths = [seq_len, 9, 3]
    mask = (np.arange(seq_len)[None, :] < np.array(lengths)[:, None]).astype("int32")
    ids = rng.integers(5, vocab_size, (3, seq_len)).astype("int32") * mask
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask}


@pytest.fixture(scope="module")
def encoder_onnx(tmp_path_factory, encoder_dir):  # noqa: F811
    from kbert.model_dir import load_model, read_model_dir
    from kbert.tasks.serving import call_model

    model = load_model(encoder_dir)
    rng = np.random.default_rng(0)
    for weight in model.weights:  # biases away from zero, as after training (tf2onnx drops zero adds)
        weight.assign(np.asarray(weight) + rng.normal(0, 0.05, weight.shape).astype("float32"))
    directory = tmp_path_factory.mktemp("onnx")
    raw, optimized = directory / "raw.onnx", directory / "model.onnx"
    export_onnx(model, str(raw))
    stats = optimize(str(raw), str(optimized))
    batch = padded_batch(read_model_dir(encoder_dir).config.vocab_size)
    reference = {k: np.asarray(v) for k, v in call_model(model, batch).items()}
    return {"raw": raw, "optimized": optimized, "stats": stats, "batch": batch, "reference": reference}


def run_with_softmax_tensors(path, batch):
    """Outputs of the model and of every Softmax node's input and output."""
    model = onnx.load(str(path))
    probes = [name for node in model.graph.node if node.op_type == "Softmax" for name in (node.input[0], node.output[0])]
    outputs = [o.name for o in model.graph.output]
    for name in probes:
        model.graph.output.append(onnx.helper.make_value_info(name, onnx.TypeProto()))
    path = str(path) + ".probed.onnx"
    onnx.save(model, path)
    values = session(path).run(outputs + probes, batch)
    return dict(zip(outputs, values[:len(outputs)])), values[len(outputs):]


def test_weights_are_initializers_read_by_the_graph(encoder_onnx):
    # export_onnx traces the weights as inputs (memory) and turns them into initializers.
    graph = onnx.load(str(encoder_onnx["raw"])).graph
    assert [i.name for i in graph.input] == ["token_ids", "segment_ids", "padding_mask"]
    read = {name for node in graph.node for name in node.input}
    assert graph.initializer and all(i.name in read for i in graph.initializer)
    assert not [n for n in graph.node if n.input and all(i in {t.name for t in graph.initializer} for i in n.input)]


def test_optimized_graph_is_fused_and_matches_keras(encoder_onnx):
    stats = encoder_onnx["stats"]
    # One layer: q, k, v, attention output, intermediate, output Dense; 3 LayerNorms.
    assert stats["rewrites"] == {"dense": 6, "layer_norm": 3, "gelu": 1, "embedding_index": 2}
    assert stats["fusions"] == {"SkipLayerNormalization": 3, "BiasGelu": 1, "Attention": 1}
    graph = onnx.load(str(encoder_onnx["optimized"])).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("Attention") == 1 and "Softmax" not in ops and "Transpose" not in ops
    out = session(encoder_onnx["optimized"]).run(None, encoder_onnx["batch"])
    names = [o.name for o in graph.output]
    mask = encoder_onnx["batch"]["padding_mask"].astype(bool)
    for name, value in zip(names, out):
        ref = encoder_onnx["reference"][name]
        got = value[mask] if name == "sequence_output" else value
        want = ref[mask] if name == "sequence_output" else ref
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_attention_is_fused_only_on_kbert_s_masking(encoder_onnx):
    from kbert.export.onnx_attention import fuse_attention

    model = onnx.load(str(encoder_onnx["raw"]))
    tidy(model)
    # A mask computed from another input is not the padding mask the op would be given.
    assert fuse_attention(model, mask_input="segment_ids") == 0
    assert fuse_attention(model) == 1
    # The fused op masks padded keys with -10000: its softmax weight is exactly 0, no subnormal.
    attention = next(n for n in model.graph.node if n.op_type == "Attention")
    assert "mask_filter_value" not in [a.name for a in attention.attribute]
    assert np.exp(np.float32(-10000.0)) == 0.0


@pytest.mark.parametrize("which", ["raw", "optimized"])
def test_padded_rows_have_no_subnormals_in_onnxruntime(encoder_onnx, which):
    outputs, softmax_tensors = run_with_softmax_tensors(encoder_onnx[which], encoder_onnx["batch"])
    assert softmax_tensors or which == "optimized"  # there the softmax is inside the Attention op
    for tensor in softmax_tensors:
        values = np.abs(tensor[tensor != 0])
        assert values.min() >= TINY, f"subnormal {values.min():.2e} in the attention softmax"
    # Real tokens do not see the padding: a row's output equals the same row unpadded.
    batch = {k: v[1:2, :9] for k, v in encoder_onnx["batch"].items()}
    short = session(encoder_onnx[which]).run(["sequence_output"], batch)[0]
    np.testing.assert_allclose(outputs["sequence_output"][1:2, :9], short, atol=1e-5)


@pytest.mark.parametrize("target, folded", [([2, -1, 3], 1), ([0, -1], 0)])
def test_tidy_folds_a_flattened_matmul_only_where_values_stay_the_same(tmp_path, target, folded):
    # Reshape(x, [-1, 4]) -> MatMul -> Reshape(target): MatMul on x itself reads the same
    # elements, unless the target has a 0 (ONNX copies that dimension from its input,
    # whose rank the rewrite would change).
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(4, 3)).astype("float32"), "w")
    flat = numpy_helper.from_array(np.array([-1, 4], "int64"), "flat")
    back = numpy_helper.from_array(np.array(target, "int64"), "back")
    nodes = [helper.make_node("Reshape", ["x", "flat"], ["r"]), helper.make_node("MatMul", ["r", "w"], ["m"]),
             helper.make_node("Reshape", ["m", "back"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight, flat, back])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = {"x": rng.normal(size=(2, 5, 4)).astype("float32")}
    onnx.save(model, str(tmp_path / "before.onnx"))
    assert tidy(model) == {"dense": folded, "layer_norm": 0, "gelu": 0, "embedding_index": 0}
    onnx.save(model, str(tmp_path / "after.onnx"))
    expected = ["MatMul", "Reshape"] if folded else ["Reshape", "MatMul", "Reshape"]
    assert [n.op_type for n in model.graph.node] == expected
    before, after = (session(tmp_path / f).run(None, x)[0] for f in ("before.onnx", "after.onnx"))
    np.testing.assert_array_equal(before, after)


def test_int8_onnx_is_held_to_the_task_metric():
    rows = [{"artifact": "keras", "metric": 90.0}, {"artifact": "onnx_dynamic", "metric": 88.9, "agreement": 0.9}]
    failures = check_rows(rows, DEFAULT_THRESHOLDS)
    assert len(failures) == 1 and failures[0].startswith("onnx_dynamic: metric 88.9")
    rows[1]["metric"] = 89.1
    assert check_rows(rows, DEFAULT_THRESHOLDS) == []


def test_cli_quantize_dynamic_writes_verified_int8_onnx(encoder_dir, tmp_path):  # noqa: F811
    train = write_tsv(tmp_path / "train.tsv", sentiment_rows(256, 0))
    dev = write_tsv(tmp_path / "dev.tsv", sentiment_rows(64, 1))
    finetune("classify", encoder_dir, train, tmp_path / "model", eval=dev, epochs=8, batch_size=16, lr=2e-3,
             seq_len=16, progress=False)
    out = tmp_path / "exports" / "sst"
    result = subprocess.run(
        [sys.executable, "-m", "kbert.cli", "export", str(tmp_path / "model"), "--format", "onnx",
         "--quantize", "dynamic", "--out", str(out)], capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    rows = {r["artifact"]: r for r in report["artifacts"]}
    assert report["passed"] and list(rows) == ["keras", "onnx", "onnx_dynamic"]
    assert rows["onnx"]["agreement"] == 1.0 and rows["onnx"]["max_abs_diff"] < 1e-4
    assert rows["onnx"]["optimizer"]["fusions"]["SkipLayerNormalization"] == 3
    assert rows["keras"]["metric"] - rows["onnx_dynamic"]["metric"] <= 1.0
    assert sorted(p.name for p in (out / "onnx").iterdir()) == ["model.onnx", "model_dynamic.onnx"]
    assert (out / "onnx" / "model_dynamic.onnx").stat().st_size < (out / "onnx" / "model.onnx").stat().st_size
    quantization = json.loads((out / "model_card.json").read_text())["quantization"]
    assert quantization["onnx_dynamic"].startswith("int8 weights")
    assert "| onnx_dynamic |" in result.stdout
