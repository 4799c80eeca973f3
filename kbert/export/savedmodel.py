"""SavedModel for TF Serving: raw strings in, task outputs out.

Built with `keras.export.ExportArchive` (Keras 3's supported path to a
SavedModel) around the Keras model and kbert's in-graph tokenizer, so the
artifact needs only `tensorflow` and `tensorflow_text` to load and serve.

Signatures:
    serving_default: `text` (and `text_pair` for QA and pair classifiers),
        the task's outputs: each task's serving module
        (`kbert.tasks.serving.<task>`, named by `kbert.tasks.registry`) says
        what they are and runs the task's own post-processing.
    ids: `token_ids`, `segment_ids`, `padding_mask` int32 `[batch, seq_len]`
        (pre-tokenized input), the model's raw outputs.
    others a serving module adds with `extra_endpoints` (the embedder's
        `similarity`: `text` + `text_pair` in, their cosine out).
"""

from kbert.tasks.base import INPUTS
from kbert.tasks.serving import SERVING_CHUNK, call_model, chunked


def serving_archive(model, tokenizer, task, labels, seq_len, pair=False, chunk=SERVING_CHUNK):
    """A `keras.export.ExportArchive` with the `serving_default` and `ids` endpoints.

    Args:
        model: the Keras model exported (`TaskSpec.export_model`).
        tokenizer: the model dir's `BertTokenizer` (tracked by the archive).
        task: the `kbert.tasks.Task` (its options shape serving, e.g. QA's
            windows), or a task name (`encoder` for encoders).
        labels: label names in id order, or None.
        seq_len: sequence length of every window.
        pair: whether `serving_default` takes `text_pair` (classify).
        chunk: rows either endpoint runs through the model at once; a
            larger request is processed chunk by chunk (bounded memory).
            None runs every request as one batch (memory grows with it).
    """
    import keras
    import tensorflow as tf

    from kbert.tasks.registry import get_task, spec

    name = task if isinstance(task, str) else task.name
    row = spec(name)
    if isinstance(task, str):
        task = get_task(name) if row.task is not None else None
    archive = keras.export.ExportArchive()
    archive.track(tokenizer)
    ids_spec = {k: tf.TensorSpec([None, seq_len], tf.int32, name=k) for k in INPUTS}
    bound = (lambda fn: chunked(fn, chunk)) if chunk else (lambda fn: fn)
    archive.add_endpoint("ids", bound(lambda inputs: call_model(model, inputs)),
                         input_signature=[ids_spec])
    serve, signature = row.serving_module().serving_default(
        model, tokenizer, seq_len, task=task, labels=labels, pair=pair)
    archive.add_endpoint("serving_default", bound(serve), input_signature=signature)
    # Tasks may serve more signatures (the embedder's `similarity`).
    extra = getattr(row.serving_module(), "extra_endpoints", None)
    for endpoint, (fn, specs) in (extra(model, tokenizer, seq_len, task=task, labels=labels) if extra else {}).items():
        archive.add_endpoint(endpoint, bound(fn), input_signature=specs)
    return archive
