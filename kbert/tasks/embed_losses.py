"""The losses of the embed task (`kbert.tasks.embed`), as Keras losses on the
embedder's output for a batch of grouped texts.

Kept apart from the task module so that the task table imports no Keras.
"""

import keras
from keras import ops


def _unit(y_pred):
    vectors = ops.cast(y_pred["embedding"] if isinstance(y_pred, dict) else y_pred, "float32")
    norm = ops.sqrt(ops.sum(ops.square(vectors), axis=-1, keepdims=True))
    return vectors / ops.maximum(norm, 1e-12)  # torch's F.normalize, as sentence-transformers' cos_sim


class MultipleNegativesRankingLoss(keras.losses.Loss):
    """In-batch negatives (sentence-transformers' MultipleNegativesRankingLoss).

    `y_pred` is the embedder's output on a batch of `columns * B` texts: B
    anchors, B positives, then (with `columns=3`) B hard negatives. Each
    anchor's cosines to all `(columns - 1) * B` candidates, times `scale`, are
    the logits of a cross-entropy whose answer is its own positive; `y_true`
    is not read. The loss is the mean over the anchors.

    Args:
        scale: multiplies the cosines (1 / temperature; 20 as sentence-transformers).
        columns: texts per example (2: anchor, positive; 3: with a negative).

    Examples:
    ```python
    model.compile(optimizer, loss=MultipleNegativesRankingLoss(scale=20.0))
    ```
    """

    def __init__(self, scale=20.0, columns=2, name="multiple_negatives_ranking", **kwargs):
        super().__init__(name=name, **kwargs)
        self.scale, self.columns = float(scale), int(columns)

    def call(self, y_true, y_pred):
        vectors = _unit(y_pred)
        batch = ops.shape(vectors)[0] // self.columns
        anchors, candidates = vectors[:batch], vectors[batch:]
        logits = self.scale * ops.matmul(anchors, ops.transpose(candidates))
        return keras.losses.sparse_categorical_crossentropy(ops.arange(batch), logits, from_logits=True)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "columns": self.columns}


class CosineSimilarityLoss(keras.losses.Loss):
    """Squared error of each pair's cosine against its score
    (sentence-transformers' CosineSimilarityLoss).

    `y_pred` is the embedder's output on B first texts then B second texts;
    `y_true` the B scores. The loss is the mean over the pairs.
    """

    def __init__(self, name="cosine_similarity_regression", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        vectors = _unit(y_pred)
        batch = ops.shape(vectors)[0] // 2
        cosines = ops.sum(vectors[:batch] * vectors[batch:], axis=-1)
        return ops.square(cosines - ops.cast(ops.reshape(y_true, (-1,)), "float32"))
