"""Task-specific knowledge distillation: a fine-tuned teacher model directory
teaches a smaller student, which is written as an ordinary model directory.

`distill` trains the student with `model.fit` on the teacher's soft targets
(temperature T, `KL * T^2`) plus the labels, as `kbert.finetune` trains
(BERT's AdamW, warm-up and linear decay, an evaluation every epoch with the
best epoch kept, TensorBoard logs, the training-curve PNG). The teacher runs
inside the train step, so it also labels unlabelled text on the fly and no
teacher logits are stored. Optional TinyBERT/MiniLM intermediate losses
(hidden states, attention) are off by default. The losses are in
`kbert.training.distiller`.

The student is a preset (random weights, the teacher's vocabulary), a
pre-trained kbert model directory with the teacher's vocabulary, or some of
the teacher's own layers (DistilBERT's initialization): `student_layers=3`
takes every other layer of a 6-layer teacher (layers 1, 3, 5, the top one
kept), with its embeddings, pooler and head.

Importing this module needs no Keras (the CLI reads its defaults here).
"""

import math
import os
import shutil
import time
import warnings

from kbert.config import check_seq_len
from kbert.errors import ConfigError, DataError, KbertError
from kbert.outputs import require_space, writes_output

DISTILL_TASKS = ("classify", "ner", "qa")


def _inputs(arguments):
    """The run's input paths: the teacher, a student directory, the data."""
    student = arguments.get("student")
    return [arguments["teacher"], arguments["train"], arguments["eval"], *_paths(arguments.get("unlabeled")),
            *([student] if isinstance(student, (str, os.PathLike)) and os.path.isdir(student) else [])]


def _paths(value):
    """A path or a list of paths as a list."""
    return [value] if isinstance(value, (str, os.PathLike)) else list(value or ())


@writes_output("model_dir", inputs=_inputs, work=".work")
def distill(
    teacher,
    train,
    out,
    student=None,
    *,
    unlabeled=None,
    eval=None,
    student_layers=None,
    temperature=2.0,
    soft_weight=1.0,
    hard_weight=0.5,
    hidden_weight=0.0,
    attention_weight=0.0,
    layer_map=None,
    epochs=3,
    batch_size=32,
    lr=1e-4,
    warmup=0.1,
    seq_len=None,
    weight_decay=0.01,
    dropout=0.1,
    seed=42,
    early_stopping=None,
    eval_batch_size=64,
    xla=False,
    progress=True,
    overwrite=False,
    **options,
):
    """Distill a fine-tuned teacher model directory into a student model directory.

    Args:
        teacher: a classify, ner or qa model directory (its task, labels,
            task options, vocab and seq_len are the student's).
        train: the labelled training file (the teacher's task format).
        out: model directory to write (atomically, when training ends).
        student: a preset name (`tiny`, `mini`, `small`, ...: random
            weights, the teacher's vocabulary), a kbert model directory of
            any task with the teacher's vocabulary (its encoder is taken), a
            `kbert.BertConfig`, or None with `student_layers`.
        unlabeled: more files whose texts the teacher labels on the fly (no
            labels needed): classify: `.txt` (one text a line) or a
            TSV/CSV/JSONL with the text (and pair) columns; ner: `.txt`, one
            sentence a line (split into words as `kbert predict` does); qa:
            SQuAD JSON (answers ignored) or a table with `question` and
            `context` columns.
        eval: evaluation file: evaluated every epoch (task metric and the
            KL to the teacher); the best epoch is kept. The teacher is
            evaluated on it once.
        student_layers: start from the teacher's own layers: a count `k`
            (the top layer of each of `k` equal groups: 6 -> 3 takes
            layers 1, 3, 5) or a list of 0-based teacher layers. The student
            is the teacher's architecture with those layers (or the preset
            `student`, which must then have the teacher's width); embeddings,
            pooler and head are copied too.
        temperature: T of the soft targets (the soft loss is `T^2 * KL`).
        soft_weight, hard_weight: weights of the soft loss and of the
            labels' loss (cross-entropy; squared error for regression).
        hidden_weight: weight of a TinyBERT hidden-state MSE (embeddings and
            every student layer against its teacher layer, through a learned
            projection when the widths differ); 0 turns it off.
        attention_weight: weight of a MiniLM/TinyBERT attention KL (each
            student layer's attention distributions against its teacher
            layer's; needs equal head counts); 0 turns it off.
        layer_map: 0-based teacher layer of each student layer for the
            intermediate losses; default: the layers `student_layers` took,
            else the top layer of each equal group.
        epochs, batch_size, lr, warmup, weight_decay, early_stopping, xla,
        progress, overwrite: as `kbert.finetune`. A student from a preset
            learns from random weights and wants a larger `lr` (~5e-4).
        seq_len: default: the teacher's.
        dropout: dropout of a new head.
        seed: seed of the student's new weights, dropout and data order.
        eval_batch_size: batch size of evaluation.
        **options: task reading options of the files (columns, `tag_column`,
            `articles`, ...; see `kbert.tasks`); the teacher's saved task
            options (NER scheme, QA windows) apply and may be overridden.

    Returns:
        dict with `model` (the student), `metrics` and `model_dir`. metrics.json
        holds the teacher's and the student's eval metrics, `kl_before` and
        `kl` (the student's mean KL to the teacher on the eval data, T = 1;
        `mse_to_teacher` for regression) and `teacher_kept` (student metric /
        teacher metric).

    Examples:
    ```python
    kbert.distill("runs/sst2", "sst2/train.tsv", "runs/sst2_l3", student_layers=3,
                  unlabeled=["sst2/unlabeled.txt"], eval="sst2/dev.tsv")
    kbert.distill("runs/sst2", "sst2/train.tsv", "runs/sst2_mini", student="mini", lr=5e-4)
    ```
    """
    import keras

    from kbert.model_dir import load_model, read_model_dir, save_model
    from kbert.tasks import model_dir_task
    from kbert.tasks.base import model_inputs, predict_arrays
    from kbert.training.callbacks import EpochEvaluator
    from kbert.training.distiller import Distiller, LossParts, objective
    from kbert.training.finetune import _check_positive, without_autotune
    from kbert.training.optimizer import make_optimizer
    from kbert.training.optimizer import warmup_steps as get_warmup_steps
    from kbert.training.options import task_options
    from kbert.training.students import layer_mapping, make_student

    info = read_model_dir(teacher)
    if info.task not in DISTILL_TASKS:
        raise ConfigError(f"{teacher}: a {info.task} model directory; distillation needs a fine-tuned "
                          f"{'/'.join(DISTILL_TASKS)} teacher (kbert finetune)")
    task = model_dir_task(info, **task_options(info.task, options, split="train"))
    labels = info.labels or None
    seq_len = check_seq_len(info.seq_len if seq_len is None else seq_len, info.config)
    _check_positive(epochs=epochs, batch_size=batch_size, lr=lr, eval_batch_size=eval_batch_size,
                    temperature=temperature)
    for name, value in (("soft_weight", soft_weight), ("hard_weight", hard_weight),
                        ("hidden_weight", hidden_weight), ("attention_weight", attention_weight)):
        if not value >= 0:
            raise KbertError(f"{name}: expected a number >= 0, got {value!r}")
    tokenizer = info.tokenizer()
    train_data = task.read(train, split="train")
    eval_data = task.read(eval, split="eval") if eval is not None else None
    unlabeled = _paths(unlabeled)
    extra = [read_unlabeled(task, path, tokenizer) for path in unlabeled]

    keras.utils.set_random_seed(seed)
    teacher_model = load_model(teacher)
    student_model, described, taken = make_student(teacher_model, info, student, student_layers, task, labels,
                                                   dropout, seq_len)
    mapping = layer_mapping(layer_map, taken, info.config, student_model.encoder.config, attention_weight)
    require_space(out, 4 * student_model.count_params())

    train_ds, batches, counts = distillation_dataset(task, train_data, extra, tokenizer, labels, seq_len,
                                                     batch_size, seed, train)
    train_ds = without_autotune(train_ds)  # the exit stall `finetune` measured (see there)
    goal = objective(task.name, temperature, labels)
    distiller = Distiller(teacher_model, student_model, goal, soft_weight, hard_weight, hidden_weight,
                          attention_weight, mapping)
    total = epochs * batches
    warmup_steps = get_warmup_steps(warmup, total)
    distiller.compile(optimizer=make_optimizer(lr, total, warmup_steps, weight_decay=weight_decay),
                      jit_compile=bool(xla))

    scoring, teacher_eval, kl_before = None, None, None
    if eval_data is not None:
        scoring = _Scoring(task, student_model, goal, eval_data, tokenizer, labels, seq_len)
        teacher_out = predict_arrays(teacher_model, model_inputs(scoring.features), eval_batch_size)
        teacher_eval = task.score(eval_data, scoring.features, teacher_out, labels)
        scoring.teacher_outputs = teacher_out
        kl_before = goal.measure(teacher_out, predict_arrays(student_model, model_inputs(scoring.features),
                                                             eval_batch_size), scoring.features)
        shown = ", ".join(f"{k} {v:.4f}" for k, v in teacher_eval.items() if isinstance(v, float))
        print(f"teacher: eval {shown}; student {goal.divergence} before: {kl_before:.4f}", flush=True)

    work = os.fspath(out).rstrip("/\\") + ".work"
    shutil.rmtree(work, ignore_errors=True)
    log_dir = os.path.join(work, "logs")
    evaluator = EpochEvaluator(scoring, eval_data, tokenizer, labels, seq_len, eval_batch_size, early_stopping)
    parts = LossParts()
    start = time.time()
    with warnings.catch_warnings():
        # The pooler of taggers and QA models gets no gradient.
        warnings.filterwarnings("ignore", message="Gradients do not exist for variables")
        distiller.fit(train_ds, epochs=epochs, steps_per_epoch=batches, verbose=1 if progress else 2,
                      shuffle=False, callbacks=[evaluator, parts, keras.callbacks.TensorBoard(log_dir=log_dir)])
    wall = time.time() - start
    evaluator.restore_best(distiller)
    for record, losses in zip(evaluator.history, parts.history):
        record.update(losses)

    t_config, s_config = info.config, student_model.encoder.config
    results = {
        "task": task.name,
        "distilled_from": os.fspath(teacher),
        "teacher": {"model_dir": os.fspath(teacher), **_size(t_config, teacher_model),
                    **({"eval": teacher_eval} if teacher_eval is not None else {})},
        "student": {"init": described, **_size(s_config, student_model),
                    **({"teacher_layers": taken} if taken is not None else {})},
        "distillation": {"temperature": temperature, "soft_weight": soft_weight, "hard_weight": hard_weight,
                         "hidden_weight": hidden_weight, "attention_weight": attention_weight,
                         "layer_map": mapping},
        "train": {"file": os.fspath(train), "examples": counts["train"], "windows": counts["train_windows"],
                  "unlabeled": [{"file": os.fspath(p), "examples": n, "windows": w}
                                for p, n, w in zip(unlabeled, counts["unlabeled"], counts["unlabeled_windows"])]},
        **evaluator.records(eval, epochs=epochs, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps,
                            seq_len=seq_len, seed=seed, train_wall_time_s=round(wall, 1)),
    }
    if eval_data is not None:
        best = evaluator.best_metrics
        results[f"{goal.divergence}_before"] = kl_before
        results[goal.divergence] = best[goal.divergence]
        if teacher_eval.get(task.metric):
            results["teacher_kept"] = best[task.metric] / teacher_eval[task.metric]
    model_dir = save_model(student_model, out, vocab=info.vocab, lowercase=info.lowercase, labels=labels or [],
                           seq_len=seq_len, metrics=results, task_options=task.options())
    if os.path.isdir(log_dir):
        shutil.move(log_dir, os.path.join(model_dir.path, "logs"))
    shutil.rmtree(work, ignore_errors=True)
    _save_curve(model_dir.path, task, evaluator, goal.divergence)
    return {"model": student_model, "metrics": results, "model_dir": model_dir}


def _size(config, model):
    return {"layers": config.num_layers, "hidden_size": config.hidden_size, "heads": config.num_heads,
            "parameters": int(model.count_params())}


# --- data ------------------------------------------------------------------------------------------------


def read_unlabeled(task, path, tokenizer):
    """The examples of an unlabelled file, as the task's training data holds them
    (`TextData` without labels, `Sentence`s, `SquadExample`s; see `distill`)."""
    from kbert.training.options import read_inputs

    ext = os.path.splitext(os.fspath(path))[1].lower()
    if task.name == "qa":
        from kbert.data.squad import SquadExample, read_squad

        if ext == ".json":
            return [e._replace(answers=[], is_impossible=False) for e in read_squad(path)]
        questions, contexts = read_inputs(path, "qa")
        if contexts is None:
            raise DataError(f"{path}: no context column: unlabelled QA files need question and context columns")
        return [SquadExample(f"unlabeled-{i}", "", q, c, [], False) for i, (q, c) in enumerate(zip(questions, contexts))]
    if task.name == "ner":
        from kbert.data.ner import Sentence
        from kbert.io import iter_text_lines
        from kbert.tasks.ner import text_words

        lines = [(number, line) for number, line in iter_text_lines(path) if line.strip()]
        words = text_words(tokenizer, [line for _, line in lines])
        sentences = [Sentence([w for w, _, _ in ws], ["O"] * len(ws), number, os.fspath(path))
                     for (number, _), ws in zip(lines, words) if ws]
        if not sentences:
            raise DataError(f"{path}: no sentences")
        return sentences
    from kbert.data.classification import TextData

    columns = task.read_options
    texts, pairs = read_inputs(path, "classify", columns.get("text_column"), columns.get("pair_column"))
    if not texts:
        raise DataError(f"{path}: no texts")
    return TextData(texts, pairs, None, list(range(1, len(texts) + 1)), os.fspath(path))


def distillation_dataset(task, train_data, extra, tokenizer, labels, seq_len, batch_size, seed, train_path):
    """`(dataset, batches, counts)`: shuffled `(x, y)` batches of the labelled
    rows and the unlabelled ones (`y` -1, NaN for regression), tokenized as
    `kbert.finetune` tokenizes (in the tf.data graph for classification)."""
    import numpy as np
    import tensorflow as tf

    from kbert.tasks.base import model_inputs

    counts = {"train": len(train_data), "unlabeled": [len(e) for e in extra]}
    if task.name == "classify":
        from kbert.data.classification import TextData, label_ids, text_dataset

        targets = label_ids(train_data, labels)
        missing = float("nan") if labels is None else -1
        texts, pairs = list(train_data.texts), (list(train_data.pairs) if train_data.pairs is not None else None)
        for data in extra:
            if (data.pairs is None) != (pairs is None):
                has = "has a second-text column" if data.pairs is not None else "has no second-text column"
                raise DataError(f"{data.source}: {has}, unlike the training file {train_path}")
            texts += data.texts
            if pairs is not None:
                pairs += data.pairs
            targets += [missing] * len(data)
        combined = TextData(texts, pairs, None, list(range(1, len(texts) + 1)), os.fspath(train_path))
        counts["train_windows"] = len(train_data)
        counts["unlabeled_windows"] = counts["unlabeled"]
        ds = text_dataset(combined, tokenizer, seq_len, batch_size, targets, shuffle=True, seed=seed)
        return ds, math.ceil(len(texts) / batch_size), counts

    try:
        f = task.features(train_data, tokenizer, labels, seq_len, training=True)
    except DataError as e:
        raise DataError(f"{train_path}: {e}") from None
    inputs, targets = model_inputs(f), task.targets(f)
    counts["train_windows"] = len(inputs["token_ids"])
    counts["unlabeled_windows"] = []
    for data in extra:
        if task.name == "ner":
            from kbert.data.ner import encode_ner

            g = encode_ner(data, tokenizer, None, seq_len=seq_len, stride=task.stride)
            more = np.full_like(g["labels"], -1)
        else:
            from kbert.data.squad import encode_squad

            g = encode_squad(data, tokenizer, seq_len=seq_len, doc_stride=task.doc_stride,
                             max_query_length=task.max_query_length, training=False)
            g = {k: getattr(g, k) for k in ("token_ids", "segment_ids", "padding_mask")}
            n = len(g["token_ids"])
            more = {"start_logits": np.full(n, -1, np.int32), "end_logits": np.full(n, -1, np.int32)}
        counts["unlabeled_windows"].append(len(g["token_ids"]))
        inputs = {k: np.concatenate([v, g[k]]) for k, v in inputs.items()}
        targets = (np.concatenate([targets, more]) if not isinstance(targets, dict)
                   else {k: np.concatenate([np.asarray(v, np.int32), more[k]]) for k, v in targets.items()})
    n = len(inputs["token_ids"])
    ds = tf.data.Dataset.from_tensor_slices((inputs, targets))
    ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    return ds.prefetch(tf.data.AUTOTUNE), math.ceil(n / batch_size), counts


# --- evaluation --------------------------------------------------------------------------------------------


class _Scoring:
    """What `EpochEvaluator` evaluates each epoch: the student's task metrics
    and its divergence to the teacher, from one pass over the eval features
    (the teacher's outputs are computed once)."""

    def __init__(self, task, student, goal, data, tokenizer, labels, seq_len):
        self.task, self.student, self.goal = task, student, goal
        self.metric = task.metric
        self.features = task.features(data, tokenizer, labels, seq_len)
        self.teacher_outputs = None

    def evaluate(self, model, data, tokenizer, labels, seq_len, batch_size):
        from kbert.tasks.base import model_inputs, predict_arrays

        outputs = predict_arrays(self.student, model_inputs(self.features), batch_size)
        metrics = self.task.score(data, self.features, outputs, labels)
        metrics[self.goal.divergence] = self.goal.measure(self.teacher_outputs, outputs, self.features)
        return metrics


def _save_curve(path, task, evaluator, divergence):
    """training_curve.png: the losses and the eval KL (left), the eval metrics (right)."""
    from kbert.training.curves import save_training_curve

    history = evaluator.history
    epochs = [h["epoch"] for h in history]
    losses = {"training loss": [h["loss"] for h in history]}
    for part in ("soft_loss", "hard_loss", "hidden_loss", "attention_loss"):
        if history and part in history[0]:
            losses[part.replace("_", " ")] = [h.get(part) for h in history]
    evals = [h.get("eval") or {} for h in history]
    if history and divergence in evals[0]:
        losses[f"eval {divergence}"] = [e.get(divergence) for e in evals]
    names = [k for k, v in evals[0].items() if isinstance(v, float) and k != divergence] if history else []
    names.sort(key=lambda name: name != task.metric)
    metrics = {f"eval {name}": [e.get(name) for e in evals] for name in names}
    save_training_curve(path, epochs, losses, metrics, x_label="epoch", title=f"distillation: {task.name}",
                        best=evaluator.best_epoch)
