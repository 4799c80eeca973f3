"""The Keras side of `kbert.distill`: the losses of each task and the model
`fit` trains.

`Distiller` holds a frozen teacher and the student. Its `train_step` runs the
teacher on the batch (outside the gradient tape: no teacher activations are
kept for the backward pass, and no teacher logits are stored anywhere else),
then the student, and minimizes

    soft_weight * T^2 * KL(teacher_T || student_T)      (Hinton et al. 2015)
  + hard_weight * cross-entropy to the labels             (labelled rows only)
  + hidden_weight * MSE of hidden states                  (TinyBERT; optional)
  + attention_weight * KL of attention distributions      (MiniLM; optional)

`KL(teacher_T || student_T)` compares the softmax of both models' logits
divided by the temperature T: the class distribution of a classifier, the tag
distribution of each real token of a tagger, the start and the end
distributions of a QA model (over the real tokens). A regressor has no
distribution: its soft loss is the squared difference to the teacher's output.
Rows without a label (the unlabelled files, labels -1 or NaN) add nothing to
the hard loss.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from kbert.layers.transformer import mask_scores
from kbert.tasks.base import softmax
from kbert.training.students import layer_map

IGNORE = -1
# Logit given to padded positions before a softmax over tokens: exp of it is 0
# in float32, and 0 * (its log-probability) stays finite.
_PADDED = -1e9


def _log_softmax(logits, temperature=1.0):
    return tf.nn.log_softmax(tf.cast(logits, tf.float32) / temperature, axis=-1)


def _kl(teacher_logits, student_logits, temperature):
    """KL(softmax(t / T) || softmax(s / T)) over the last axis, per row."""
    log_t = _log_softmax(teacher_logits, temperature)
    log_s = _log_softmax(student_logits, temperature)
    return tf.reduce_sum(tf.exp(log_t) * (log_t - log_s), axis=-1)


def _masked_mean(values, mask):
    mask = tf.cast(mask, tf.float32)
    return tf.reduce_sum(values * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def _sparse_ce(labels, logits):
    """Cross-entropy per row of integer `labels` (-1: none; gives 0 there)."""
    safe = tf.maximum(tf.cast(labels, tf.int32), 0)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=tf.cast(logits, tf.float32))


def _np_kl(teacher_logits, student_logits, mask=None):
    """Mean KL(softmax(t) || softmax(s)) over rows (those where `mask`), NumPy."""
    p = softmax(teacher_logits)
    log_p = np.log(np.maximum(p, 1e-300))
    log_q = np.log(np.maximum(softmax(student_logits), 1e-300))
    kl = np.sum(p * (log_p - log_q), axis=-1)
    if mask is None:
        return float(kl.mean()) if kl.size else float("nan")
    mask = np.asarray(mask, bool)
    return float(kl[mask].mean()) if mask.any() else float("nan")


class Objective:
    """The soft and hard losses of one task, and the divergence reported.

    Args:
        temperature: T of the soft targets.
    """

    divergence = "kl"  # the key metrics.json reports the divergence under

    def __init__(self, temperature):
        self.temperature = float(temperature)

    def soft(self, teacher, student, x):
        raise NotImplementedError

    def hard(self, y, student):
        raise NotImplementedError

    def measure(self, teacher, student, features):
        """The divergence of the student's outputs to the teacher's (NumPy, T = 1)."""
        raise NotImplementedError


class ClassifyObjective(Objective):
    """Class distributions (soft) and labels (hard); a regressor: squared error."""

    def __init__(self, temperature, regression=False):
        super().__init__(temperature)
        self.regression = regression
        if regression:
            self.divergence = "mse_to_teacher"

    def soft(self, teacher, student, x):
        if self.regression:
            return tf.reduce_mean(tf.square(tf.cast(student, tf.float32) - tf.cast(teacher, tf.float32)))
        return self.temperature ** 2 * tf.reduce_mean(_kl(teacher, student, self.temperature))

    def hard(self, y, student):
        if self.regression:
            y = tf.cast(y, tf.float32)
            labelled = tf.math.is_finite(y)
            error = tf.square(tf.cast(student[:, 0], tf.float32) - tf.where(labelled, y, 0.0))
            return _masked_mean(error, labelled)
        return _masked_mean(_sparse_ce(y, student), y >= 0)

    def measure(self, teacher, student, features):
        if self.regression:
            return float(np.mean((np.asarray(teacher, np.float64) - np.asarray(student, np.float64)) ** 2))
        return _np_kl(teacher, student)


class NerObjective(Objective):
    """Tag distributions of every real token (soft); tags at first pieces (hard)."""

    def soft(self, teacher, student, x):
        kl = _kl(teacher, student, self.temperature)
        return self.temperature ** 2 * _masked_mean(kl, x["padding_mask"])

    def hard(self, y, student):
        return _masked_mean(_sparse_ce(y, student), y >= 0)

    def measure(self, teacher, student, features):
        return _np_kl(teacher, student, features["padding_mask"])


class QaObjective(Objective):
    """Start and end distributions over the real tokens (soft); answer positions (hard)."""

    def soft(self, teacher, student, x):
        real = tf.cast(x["padding_mask"], tf.bool)
        total = 0.0
        for key in ("start_logits", "end_logits"):
            t = tf.where(real, tf.cast(teacher[key], tf.float32), _PADDED)
            s = tf.where(real, tf.cast(student[key], tf.float32), _PADDED)
            total += tf.reduce_mean(_kl(t, s, self.temperature))
        return self.temperature ** 2 * total / 2

    def hard(self, y, student):
        total = 0.0
        for key in ("start_logits", "end_logits"):
            total += _masked_mean(_sparse_ce(y[key], student[key]), y[key] >= 0)
        return total / 2

    def measure(self, teacher, student, features):
        real = np.asarray(features["padding_mask"], bool)
        kls = [_np_kl(np.where(real, teacher[key], _PADDED), np.where(real, student[key], _PADDED))
               for key in ("start_logits", "end_logits")]
        return float(np.mean(kls))


def objective(task, temperature, labels):
    """The `Objective` of a task name (`labels` None: a regressor)."""
    if task == "classify":
        return ClassifyObjective(temperature, regression=labels is None)
    return {"ner": NerObjective, "qa": QaObjective}[task](temperature)


def forward(model, x, training, attention_layers=()):
    """Outputs, hidden states (embeddings then every block) and the attention
    logits of blocks `attention_layers`, of a classify/ner/qa model.

    The encoder and head are run layer by layer (the wiring of
    `kbert.models.BertEncoder` and the task models), so the intermediate
    states come from the one forward pass.
    """
    encoder = model.encoder
    mask = x["padding_mask"]
    h = encoder.embeddings(x["token_ids"], x["segment_ids"], training=training)
    hidden, scores = [h], {}
    for index, block in enumerate(encoder.transformer_layers):
        if index in attention_layers:
            scores[index] = attention_logits(block, h, mask)
        h = block(h, padding_mask=mask, training=training)
        hidden.append(h)
    if hasattr(model, "num_classes"):  # BertClassifier
        out = model.head(encoder.pooler(h), training=training)
    elif hasattr(model, "num_labels"):  # BertTagger
        out = model.head(h, training=training)
    else:  # BertQuestionAnswerer
        start, end = model.head(h)
        out = {"start_logits": start, "end_logits": end}
    return out, hidden, scores


def attention_logits(block, x, padding_mask):
    """The masked attention logits `[batch, heads, queries, keys]` a
    `TransformerBlock` computes on `x` (its softmax is the attention)."""
    batch, length = tf.shape(x)[0], tf.shape(x)[1]

    def heads(t):
        return tf.transpose(tf.reshape(t, (batch, length, block.num_heads, block.head_size)), (0, 2, 1, 3))

    q, k = heads(block.query(x)), heads(block.key(x))
    scores = tf.cast(tf.matmul(q, k, transpose_b=True), tf.float32) * (1.0 / math.sqrt(block.head_size))
    return mask_scores(scores, padding_mask)


class Distiller(keras.Model):
    """A frozen teacher and a student, trained with `model.fit` on `(x, y)`
    batches (`y`: the task's targets, -1 / NaN where a row has no label).

    Args:
        teacher, student: task models of the same task and labels.
        objective: the task's `Objective`.
        soft_weight, hard_weight: weights of the soft and hard losses.
        hidden_weight: weight of the hidden-state MSE (0: off). Student
            layer i (and the embeddings) learn the states of teacher layer
            `mapping[i]`, through a learned projection when the widths differ.
        attention_weight: weight of the attention KL (0: off; the head counts
            must match).
        mapping: teacher layer of each student layer (default `layer_map`).

    Calling it runs the student; `metrics` are the loss and its parts.
    """

    def __init__(self, teacher, student, objective, soft_weight=1.0, hard_weight=0.5, hidden_weight=0.0,
                 attention_weight=0.0, mapping=None, **kwargs):
        super().__init__(**kwargs)
        self.teacher = teacher
        self.teacher.trainable = False
        self.student = student
        self.objective = objective
        self.weights_of = {"soft_loss": float(soft_weight), "hard_loss": float(hard_weight),
                           "hidden_loss": float(hidden_weight), "attention_loss": float(attention_weight)}
        t_config, s_config = teacher.encoder.config, student.encoder.config
        self.mapping = list(mapping) if mapping is not None else layer_map(t_config.num_layers, s_config.num_layers)
        self.projection = None
        if hidden_weight and s_config.hidden_size != t_config.hidden_size:
            self.projection = keras.layers.Dense(t_config.hidden_size, name="hidden_projection")
            self.projection.build((None, None, s_config.hidden_size))
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", *self.parts)}

    @property
    def parts(self):
        return [name for name, weight in self.weights_of.items() if weight]

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def _run(self, model, x, training, attention):
        if not (self.weights_of["hidden_loss"] or attention):
            return model(x, training=training), [], {}
        return forward(model, x, training, attention)

    def losses_of(self, x, y, training=True):
        """`{part: loss}` of one batch (the student in training mode)."""
        attention = bool(self.weights_of["attention_loss"])
        teacher, t_hidden, t_scores = self._run(self.teacher, x, False, set(self.mapping) if attention else ())
        teacher = tf.nest.map_structure(tf.stop_gradient, teacher)
        student, s_hidden, s_scores = self._run(self.student, x, training,
                                                set(range(len(self.mapping))) if attention else ())
        parts = {"soft_loss": self.objective.soft(teacher, student, x)}
        if self.weights_of["hard_loss"]:
            parts["hard_loss"] = self.objective.hard(y, student)
        real = tf.cast(x["padding_mask"], tf.float32)
        if self.weights_of["hidden_loss"]:
            pairs = [(0, 0)] + [(i + 1, j + 1) for i, j in enumerate(self.mapping)]
            total = 0.0
            for i, j in pairs:
                h = s_hidden[i] if self.projection is None else self.projection(s_hidden[i])
                error = tf.reduce_mean(tf.square(tf.cast(h, tf.float32) - tf.stop_gradient(
                    tf.cast(t_hidden[j], tf.float32))), axis=-1)
                total += _masked_mean(error, real)
            parts["hidden_loss"] = total / len(pairs)
        if attention:
            total = 0.0
            for i, j in enumerate(self.mapping):
                kl = _kl(tf.stop_gradient(t_scores[j]), s_scores[i], 1.0)  # [batch, heads, queries]
                total += _masked_mean(kl, real[:, None, :] * tf.ones_like(kl))
            parts["attention_loss"] = total / len(self.mapping)
        return parts

    def train_step(self, data):
        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            parts = self.losses_of(x, y)
            loss = tf.add_n([self.weights_of[name] * value for name, value in parts.items()])
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        self.trackers["loss"].update_state(loss)
        for name, value in parts.items():
            if name in self.trackers:
                self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}


class LossParts(keras.callbacks.Callback):
    """The mean of each loss part per epoch (for metrics.json and the curve)."""

    def __init__(self):
        super().__init__()
        self.history = []

    def on_epoch_end(self, epoch, logs=None):
        self.history.append({k: float(v) for k, v in (logs or {}).items() if k.endswith("_loss")})
