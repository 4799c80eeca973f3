"""ONNX for onnxruntime: ids in (`token_ids`, `segment_ids`, `padding_mask`,
int32, dynamic batch and length), the model's outputs out.

tf2onnx (opset 17) converts a `tf.function` around the Keras model (its Python
API has no SavedModel entry point), with the weights as inputs of the function
that become initializers after (`export_onnx` says why: memory). Its graph is correct but spelled in the
forms TensorFlow lowers to: every Dense is a Tensordot (Reshape, MatMul and a
Reshape whose shape is computed at run time), LayerNorm is
`tf.nn.batch_normalization` arithmetic, GELU is `(0.5 * x) * (1 + erf(...))`,
and each embedding lookup wraps negative ids. onnxruntime's transformer
optimizer matches none of those, so `tidy` first rewrites them into plain
MatMul, `LayerNormalization` (standard since opset 17), the GELU operand order
the optimizer knows, and a bare Gather (ONNX Gather wraps negative indices
itself). Each rewrite checks the whole pattern and leaves anything else alone;
the export verifies the result against the Keras model.

`optimize` then fuses SkipLayerNormalization (residual add + LayerNorm, with
the dense bias) and BiasGelu (onnxruntime contrib ops: the optimized file runs
in onnxruntime, not in other ONNX runtimes). onnxruntime's attention fusion
does not match kbert's graph (not even with the plain additive mask kbert had
before) and stays off, so that no optimizer version can swap in a different
masking; kbert's own `onnx_attention.fuse_attention` replaces each block's
attention with onnxruntime's `Attention` op instead, whose masking it checks.

`quantize` writes the int8 variant: int8 weights (MatMul, embeddings) with a
scale per channel, activations quantized at run time, like TFLite's dynamic
range mode.
"""

import collections
import contextlib
import logging
import os

OPSET = 17
# intra-op threads of the sessions kbert runs (verification and latency): the
# same 2 threads as the TFLite and SavedModel figures, so the report compares
# like with like. onnxruntime's default (one per core, spinning) slowed batch 1
# tenfold on a busy 2-core machine.
THREADS = 2


def export_onnx(model, path, seq_len=None):
    """Write `model` (a kbert Keras model) to `path` as ONNX, as tf2onnx converts it.

    The weights enter the traced function as inputs and become initializers
    afterwards: tf2onnx's optimizer passes rewrite every node's protobuf each
    time, and with the weights as constants each pass kept another copy of
    them (protobuf arenas free nothing until the node goes), measured on
    MiniLM: conversion peak RSS 6.3 GB; with the weights as inputs 1.35 GB.

    Returns the output names. `optimize` turns the file into the one kbert ships.
    """
    import numpy as np
    import onnx
    import tensorflow as tf
    import tf2onnx

    from kbert.tasks.base import INPUTS
    from kbert.tasks.serving import call_model

    trainable, fixed = list(model.trainable_variables), list(model.non_trainable_variables)
    weights = {f"kbert_weight_{i}": v for i, v in enumerate(trainable + fixed)}
    specs = [tf.TensorSpec([None, seq_len], tf.int32, name=n) for n in INPUTS]
    specs += [tf.TensorSpec(v.shape, v.dtype, name=name) for name, v in weights.items()]

    @tf.function(input_signature=specs)
    def fn(token_ids, segment_ids, padding_mask, *values):
        inputs = {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}
        out = call_model(model, inputs, variables=(list(values[:len(trainable)]), list(values[len(trainable):])))
        return {k: tf.identity(v, name=k) for k, v in out.items()}

    proto, _ = tf2onnx.convert.from_function(fn, input_signature=specs, opset=OPSET)
    _weights_to_initializers(proto, {name: np.asarray(v) for name, v in weights.items()})
    onnx.save(proto, os.fspath(path))
    return [o.name for o in proto.graph.output]


def _weights_to_initializers(model, values):
    """Turn the weight inputs of `model` into initializers, fold the Reshapes
    tf2onnx left on them (it folds those only on constants) and drop the
    weights the graph does not read (e.g. a head's unused pooler)."""
    from onnx import numpy_helper

    used = {name for node in model.graph.node for name in node.input}
    inputs = [i for i in model.graph.input if i.name not in values]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    model.graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in values.items() if name in used)
    graph = _Graph(model.graph)
    for node in list(model.graph.node):
        if node.op_type == "Reshape" and all(name in graph.init for name in node.input):
            data, shape = graph.const(node.input[0]), graph.const(node.input[1])
            shape = [data.shape[i] if d == 0 else d for i, d in enumerate(shape)]
            model.graph.initializer.append(numpy_helper.from_array(data.reshape(shape), node.output[0]))
            graph.retire(node)
    graph.prune()


def optimize(source, path):
    """Tidy `source` (an `export_onnx` file) and run onnxruntime's BERT optimizer on it.

    Args:
        source: ONNX file from `export_onnx`.
        path: where the optimized model is written (may equal `source`).

    Returns:
        `{"rewrites": {...}, "fusions": {...}}`: how many patterns `tidy`
        rewrote and the fused operators onnxruntime made (non-zero counts).
    """
    import onnx
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    from kbert.export.onnx_attention import fuse_attention

    model = onnx.load(source)
    rewrites = tidy(model)
    options = FusionOptions("bert")
    options.enable_attention = False  # keeps kbert's masked softmax (see the module docstring)
    # opt_level 0: only the transformer fusions; onnxruntime applies its own
    # graph optimizations when a session loads the file, for the CPU it runs on.
    with _quiet("onnxruntime.transformers"):  # "Model producer not matched: expected pytorch"
        optimized = optimize_model(model, model_type="bert", optimization_options=options, opt_level=0)
    fusions = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    attention = fuse_attention(optimized.model)
    if attention:
        fusions["Attention"] = attention
    optimized.save_model_to_file(path)
    return {"rewrites": rewrites, "fusions": fusions}


def quantize(source, path):
    """Write the dynamic-range int8 version of `source` to `path`: int8 weights
    with a scale per output channel, uint8 activations quantized at run time.

    Per channel because per tensor cost 1.4 points of SST-2 accuracy on MiniLM
    (80.2 vs Keras 81.6; per channel 81.4, at the same size and speed)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # ONNX shape inference cannot type the outputs of onnxruntime's contrib ops
    # (SkipLayerNormalization, BiasGelu): they are float32.
    with _quiet("root"):  # one "failed to infer data type" warning per contrib-op tensor
        quantize_dynamic(source, path, weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


@contextlib.contextmanager
def _quiet(logger):
    log = logging.getLogger(None if logger == "root" else logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def session(path, threads=THREADS):
    """An onnxruntime CPU session with `threads` intra-op threads and one inter-op thread."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])


# --- tidy: tf2onnx's spellings -> the standard forms onnxruntime fuses -------------------------------


def tidy(model):
    """Rewrite `model` (an onnx ModelProto from `export_onnx`) in place; returns the count per rewrite."""
    graph = _Graph(model.graph)
    counts = {"dense": _fold_dense(graph), "layer_norm": _fold_layer_norm(graph)}
    graph.prune()  # the replaced nodes go before the graph is sorted again
    counts.update(gelu=_reorder_gelu(graph), embedding_index=_unwrap_indices(graph))
    graph.prune()
    return counts


class _Graph:
    """Producer/consumer maps over an onnx GraphProto, rebuilt after each rewrite."""

    def __init__(self, graph):
        self.graph = graph
        self.refresh()

    def refresh(self):
        self.init = {i.name: i for i in self.graph.initializer}
        self.inputs = {i.name for i in self.graph.input}
        self.producer = {o: n for n in self.graph.node for o in n.output}
        self.consumers = collections.defaultdict(list)
        for node in self.graph.node:
            for name in node.input:
                self.consumers[name].append(node)

    def const(self, name):
        from onnx import numpy_helper

        return numpy_helper.to_array(self.init[name]) if name in self.init else None

    def scalar(self, name):
        value = self.const(name)
        return None if value is None or value.size != 1 else float(value.reshape(-1)[0])

    def parent(self, node, index, op_type):
        if node is None or node is False or index >= len(node.input):
            return None
        found = self.producer.get(node.input[index])
        return found if found is not None and found.op_type == op_type else None

    def parent_skipping_casts(self, name):
        node = self.producer.get(name)
        while node is not None and node.op_type == "Cast":
            node = self.producer.get(node.input[0])
        return node

    def only_user(self, node, user):
        return [n.name for n in self.consumers[node.output[0]]] == [user.name]

    def retire(self, node):
        """Detach `node`'s output so `prune` drops it (its consumers were rewired)."""
        node.output[0] += "__replaced"

    def prune(self):
        """Drop the nodes and initializers no graph output depends on."""
        self.refresh()  # rewrites renamed outputs since the maps were built
        needed, stack = set(), [o.name for o in self.graph.output]
        while stack:
            name = stack.pop()
            if name not in needed:
                needed.add(name)
                stack.extend(self.producer[name].input if name in self.producer else ())
        keep = [n for n in self.graph.node if any(o in needed for o in n.output)]
        inits = [i for i in self.graph.initializer if i.name in needed]
        del self.graph.node[:]
        self.graph.node.extend(keep)
        del self.graph.initializer[:]
        self.graph.initializer.extend(inits)
        self.refresh()

    def sort(self):
        """Order the nodes topologically (rewired nodes may read later outputs)."""
        ready = self.inputs | set(self.init) | {""}
        pending, done = list(self.graph.node), []
        while pending:
            rest = []
            for node in pending:
                if all(i in ready for i in node.input):
                    done.append(node)
                    ready.update(node.output)
                else:
                    rest.append(node)
            if len(rest) == len(pending):
                raise ValueError("ONNX graph has a cycle or a missing input")
            pending = rest
        del self.graph.node[:]
        self.graph.node.extend(done)
        self.refresh()


def _fold_dense(g):
    """Reshape(x, [-1, K]) -> MatMul(W [K, N]) -> Reshape(S)  =>  MatMul(x, W) [-> Reshape(S)].

    This is how tf2onnx spells Keras Dense on a 3-D input (TF's Tensordot):
    ONNX MatMul broadcasts over the leading dimensions itself. The final
    Reshape goes when it only restores x's leading dimensions; otherwise (tf2onnx
    merged it with the reshape into attention heads) it stays and reads the
    same elements in the same order. A MatMul whose x does not end in K fails
    when the session runs, so the export's verification would catch it.
    """
    count = 0
    for back in list(g.graph.node):
        matmul = g.parent(back, 0, "MatMul") if back.op_type == "Reshape" else None
        flat = g.parent(matmul, 0, "Reshape")
        if flat is None or matmul.input[1] not in g.init or not g.only_user(matmul, back):
            continue
        weight = g.init[matmul.input[1]]
        shape = g.const(flat.input[1])
        if len(weight.dims) != 2 or shape is None or list(shape) != [-1, weight.dims[0]]:
            continue
        target = g.const(back.input[1])
        if target is not None and 0 in target:  # ONNX copies a 0 from the input's shape, whose rank changes
            continue
        matmul.input[0] = flat.input[0]
        if _restores_leading_dims(g, back.input[1], flat.input[0], weight.dims[1]):
            matmul.output[0], back.output[0] = back.output[0], matmul.output[0]
            g.retire(back)
        count += 1
    g.refresh()
    return count


def _restores_leading_dims(g, shape_name, x, n):
    """Whether `shape_name` is Concat(Shape(x)[:-1], [n]) (through Casts), as Tensordot computes it."""
    concat = g.parent_skipping_casts(shape_name)
    if concat is None or concat.op_type != "Concat" or len(concat.input) != 2:
        return False
    tail = g.const(concat.input[1])
    gather = g.parent_skipping_casts(concat.input[0])
    if tail is None or list(tail) != [n] or gather is None or gather.op_type != "Gather":
        return False
    shape_of = g.parent_skipping_casts(gather.input[0])
    kept = g.const(gather.input[1])
    return (shape_of is not None and shape_of.op_type == "Shape" and shape_of.input[0] == x
            and kept is not None and list(kept) == list(range(kept.size)))


def _fold_layer_norm(g):
    """tf.nn.batch_normalization's LayerNorm  =>  LayerNormalization(x, gamma, beta, axis=-1).

    tf2onnx writes it as: mean = GlobalAveragePool(x) (the last axis of a 3-D
    tensor); var = GlobalAveragePool((x - mean)^2); s = gamma / sqrt(var + eps);
    out = x * s + (beta + (-mean) * s).
    """
    from onnx import helper, numpy_helper

    count = 0
    for out in list(g.graph.node):
        if out.op_type != "Add":
            continue
        for i in (0, 1):
            scaled, shifted = g.parent(out, i, "Mul"), g.parent(out, 1 - i, "Add")
            if scaled is not None and shifted is not None:
                break
        else:
            continue
        beta_at = next((j for j in (1, 0) if shifted.input[j] in g.init), None)
        neg_scaled = beta_at is not None and g.parent(shifted, 1 - beta_at, "Mul")
        if not neg_scaled:
            continue
        # scaled = x * s and neg_scaled = (-mean) * s share s
        common = [n for n in scaled.input if n in neg_scaled.input]
        if len(common) != 1:
            continue
        s_name = common[0]
        x = next(n for n in scaled.input if n != s_name) if scaled.input[0] != scaled.input[1] else None
        neg = g.producer.get(next(n for n in neg_scaled.input if n != s_name))
        scale = g.producer.get(s_name)
        mean = g.parent(neg, 0, "GlobalAveragePool") if neg is not None and neg.op_type == "Neg" else None
        if x is None or mean is None or mean.input[0] != x or scale is None or scale.op_type != "Mul":
            continue
        gamma_at = next((j for j in (1, 0) if scale.input[j] in g.init), None)
        rsqrt = gamma_at is not None and g.parent(scale, 1 - gamma_at, "Reciprocal")
        plus_eps = g.parent(g.parent(rsqrt, 0, "Sqrt"), 0, "Add") if rsqrt else None
        if plus_eps is None:
            continue
        eps_at = next((j for j in (1, 0) if g.scalar(plus_eps.input[j]) is not None), None)
        variance = eps_at is not None and g.parent(plus_eps, 1 - eps_at, "GlobalAveragePool")
        square = g.parent(variance, 0, "Mul") if variance else None
        centred = g.parent(square, 0, "Sub") if square is not None and square.input[0] == square.input[1] else None
        if centred is None or list(centred.input) != [x, mean.output[0]]:
            continue
        gamma = g.const(scale.input[gamma_at]).reshape(-1).astype("float32")
        beta = g.const(shifted.input[beta_at]).reshape(-1).astype("float32")
        if gamma.shape != beta.shape:
            continue
        name = out.output[0]
        g.graph.initializer.extend([numpy_helper.from_array(gamma, name + "/gamma"),
                                    numpy_helper.from_array(beta, name + "/beta")])
        g.graph.node.append(helper.make_node(
            "LayerNormalization", [x, name + "/gamma", name + "/beta"], [name], name=out.name + "/LayerNorm",
            axis=-1, epsilon=g.scalar(plus_eps.input[eps_at])))
        g.retire(out)
        count += 1
    g.refresh()
    return count


def _reorder_gelu(g):
    """(0.5 * x) * (1 + erf(x * c))  =>  ((1 + erf(x * c)) * 0.5) * x, the operand order of
    onnxruntime's GELU fusion for TensorFlow graphs (the same value, computed in another order)."""
    count = 0
    for erf in list(g.graph.node):
        inner = g.parent(erf, 0, "Mul") if erf.op_type == "Erf" else None
        users = g.consumers[erf.output[0]] if inner is not None else []
        if len(users) != 1 or users[0].op_type != "Add":
            continue
        plus_one = users[0]
        x = next((n for n in inner.input if n not in g.init), None)
        users = g.consumers[plus_one.output[0]]
        if x is None or len(users) != 1 or users[0].op_type != "Mul":
            continue
        out = users[0]
        half = g.producer.get(next((n for n in out.input if n != plus_one.output[0]), ""))
        if half is None or half.op_type != "Mul" or x not in half.input or not g.only_user(half, out):
            continue
        c = next((n for n in half.input if n != x), None)
        if g.scalar(c) != 0.5:
            continue
        half.input[0], half.input[1] = plus_one.output[0], c
        out.input[0], out.input[1] = half.output[0], x
        count += 1
    g.sort()
    return count


def _unwrap_indices(g):
    """Gather(table, where(ids < 0, ids + n, ids))  =>  Gather(table, ids).

    Keras wraps negative ids before its lookup; ONNX Gather does the same
    itself, so the arithmetic tf2onnx spells it with (Less, Not, Cast, Mul,
    Add on the one graph input) goes.
    """
    count = 0
    for gather in g.graph.node:
        if gather.op_type != "Gather" or gather.input[0] not in g.init or gather.input[1] in g.inputs:
            continue
        leaves, op_types, stack, seen = set(), set(), [gather.input[1]], set()
        while stack:
            name = stack.pop()
            if name in seen or name in g.init:
                continue
            seen.add(name)
            node = g.producer.get(name)
            if name in g.inputs or node is None:
                leaves.add(name if name in g.inputs else None)
                continue
            op_types.add(node.op_type)
            stack.extend(node.input)
        if len(leaves) == 1 and None not in leaves and "Less" in op_types \
                and op_types <= {"Less", "Not", "Cast", "Mul", "Add"}:
            gather.input[1] = leaves.pop()
            count += 1
    g.refresh()
    return count
