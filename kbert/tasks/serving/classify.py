"""Serving for sequence (pair) classification and regression.

Outputs: `logits`, `probabilities` `[batch, classes]`, `label_ids` `[batch]`,
`labels` (names); a regressor: `logits` `[batch, 1]` and `score` `[batch]`.
Inputs: `text`, and `text_pair` for models trained on pairs.

The TFLite file (ids in, `ids_outputs`) returns `probabilities` only: MediaPipe's
TextClassifier reports its output tensor as the scores, and an app needs no softmax.
"""

from kbert.tasks.serving import text_specs


def serving_default(model, tokenizer, seq_len, task=None, labels=None, pair=False):
    import tensorflow as tf

    names = tf.constant([str(x) for x in (labels or [""])])

    def classify(inputs):
        logits = tf.cast(model(inputs, training=False), tf.float32)
        if not labels:
            return {"logits": logits, "score": logits[:, 0]}
        ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits), "label_ids": ids,
                "labels": tf.gather(names, ids)}

    if pair:
        return (lambda text, text_pair: classify(tokenizer(text, text_pair, seq_len=seq_len))), text_specs(True)
    return (lambda text: classify(tokenizer(text, seq_len=seq_len))), text_specs()


def ids_outputs(outputs):
    """What the ids-in TFLite file returns from the model's `outputs`:
    `probabilities` `[batch, classes]` for a classifier (a softmax in the
    graph), the `logits` `[batch, 1]` of a regressor unchanged."""
    import tensorflow as tf

    logits = outputs["logits"]
    if logits.shape[-1] == 1:
        return outputs
    return {"probabilities": tf.nn.softmax(tf.cast(logits, tf.float32))}
