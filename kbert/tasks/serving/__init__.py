"""One serving module per task: the SavedModel's raw-string `serving_default`.

Each module has `serving_default(model, tokenizer, seq_len, task=None,
labels=None, pair=False)`, returning the function and its input signature;
`kbert.export.savedmodel` adds it to the archive with the task-independent
`ids` endpoint. The registry (`kbert.tasks.registry`) names each task's
module. What a signature does in the graph is what the task's `predict`
does in Python (the same tokenizer methods, windows and post-processing).

Inputs are `text` (and `text_pair`), 1-D `tf.string`; outputs are listed in
each module. Every output is per input text (its first axis is the batch),
which is what lets `chunked` run a request in fixed-size pieces.
"""

# Texts a raw-string signature runs through the model at once. A request is
# processed in chunks of this many texts, one after another, so a server's
# memory is bounded by the chunk, not by the request: unchunked, 10,000
# strings took MiniLM's server from 0.9 to 3.2+ GB RSS (#15). 64 keeps
# batched throughput (benchmarks/serving_memory.py measures both).
SERVING_CHUNK = 64


def text_specs(pair=False):
    """The input signature of a raw-string endpoint: `text` (and `text_pair`)."""
    import tensorflow as tf

    specs = [tf.TensorSpec([None], tf.string, name="text")]
    if pair:
        specs.append(tf.TensorSpec([None], tf.string, name="text_pair"))
    return specs


def call_model(model, inputs, variables=None):
    """The model's outputs on `inputs` as a dict of float32 tensors (`logits`
    for single-output models): what every exported signature returns.

    `variables`: `(trainable, non_trainable)` values to run the model with
    instead of its own (`stateless_call`), e.g. as inputs of a traced function.
    """
    import tensorflow as tf

    if variables is None:
        out = model(inputs, training=False)
    else:
        out, _ = model.stateless_call(*variables, inputs, training=False)
    if not isinstance(out, dict):
        out = {"logits": out}
    return {k: tf.cast(v, tf.float32) for k, v in out.items()}


def chunked(serve, size=SERVING_CHUNK):
    """`serve` run on `size` texts at a time, its outputs concatenated.

    Args:
        serve: an endpoint whose inputs (tensors or dicts of them) and
            outputs (a dict of tensors) all have the batch as first axis: a
            raw-string `serving_default` or the `ids` endpoint.
        size: texts per chunk.

    The chunks run one at a time (`parallel_iterations=1`): a `while_loop`
    would otherwise run up to 10 at once and bring back most of the memory
    the chunking saves.
    """
    import tensorflow as tf

    def run(*inputs):
        n = tf.shape(tf.nest.flatten(inputs)[0])[0]

        def piece(start, stop):
            return tf.nest.map_structure(lambda t: t[start:stop], inputs)

        count = tf.maximum((n + size - 1) // size, 1)
        # The first chunk, traced outside the loop, gives the outputs'
        # structure and dtypes (and is the whole request when it is small).
        first = serve(*piece(0, size))
        keys = sorted(first)
        arrays = [tf.TensorArray(first[k].dtype, size=count, infer_shape=False).write(0, first[k]) for k in keys]

        def body(i, *arrays):
            out = serve(*piece(i * size, (i + 1) * size))
            return (i + 1,) + tuple(a.write(i, out[k]) for a, k in zip(arrays, keys))

        _, *arrays = tf.while_loop(lambda i, *_: i < count, body, (tf.constant(1), *arrays),
                                   parallel_iterations=1)
        out = {k: a.concat() for k, a in zip(keys, arrays)}
        for k in keys:
            out[k].set_shape([None] + first[k].shape[1:])
        return out

    return run
