"""One serving module per task: the SavedModel's raw-string `serving_default`.

Each module has `serving_default(model, tokenizer, seq_len, task=None,
labels=None, pair=False)`, returning the function and its input signature;
`kbert.export.savedmodel` adds it to the archive with the task-independent
`ids` endpoint. The registry (`kbert.tasks.registry`) names each task's
module. What a signature does in the graph is what the task's `predict`
does in Python (the same tokenizer methods, windows and post-processing).

Inputs are `text` (and `text_pair`), 1-D `tf.string`; outputs are listed in
each module.
"""


def text_specs(pair=False):
    """The input signature of a raw-string endpoint: `text` (and `text_pair`)."""
    import tensorflow as tf

    specs = [tf.TensorSpec([None], tf.string, name="text")]
    if pair:
        specs.append(tf.TensorSpec([None], tf.string, name="text_pair"))
    return specs


def call_model(model, inputs):
    """The model's outputs on `inputs` as a dict of float32 tensors (`logits`
    for single-output models): what every exported signature returns."""
    import tensorflow as tf

    out = model(inputs, training=False)
    if not isinstance(out, dict):
        out = {"logits": out}
    return {k: tf.cast(v, tf.float32) for k, v in out.items()}
