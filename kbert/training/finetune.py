"""Fine-tuning, evaluation and prediction on a kbert model directory.

`finetune` starts from any model directory (pre-trained by kbert, imported from
Hugging Face or Google, or an earlier fine-tune), puts the task's head on its
encoder and trains with `model.fit`: BERT's AdamW with linear warm-up and
decay, an evaluation after every epoch with the task metric, the best epoch
kept, optional early stopping, TensorBoard logs and a training-curve PNG. The
result is a model directory with labels, seq_len and `metrics.json`, ready for
`evaluate`, `predict` and export.

Importing this module needs no Keras (the CLI reads its defaults from these
signatures); training imports it.
"""

import os
import shutil
import sys
import time
import warnings

from kbert.config import check_seq_len
from kbert.errors import DataError, KbertError
from kbert.outputs import require_space, writes_output
from kbert.training.lora import DEFAULT_TARGETS as LORA_TARGETS

# Peak learning rates when none is given: BERT's fine-tuning range, and LoRA's
# (only the small adapters and the head train). MiniLM SST-2, 94 steps, rank 8
# on every layer: 2e-3 matched full fine-tuning at 1e-4 (81.77), 1e-3 was 1.5
# points lower (benchmarks/README.md, "LoRA"; one seed).
DEFAULT_LR = 3e-5
LORA_LR = 2e-3


@writes_output("model_dir", inputs=("init", "train", "eval"), work=".work",
               when=lambda args: not args.get("save_adapter"))
@writes_output("adapter", inputs=("init", "train", "eval"), work=".work",
               when=lambda args: bool(args.get("save_adapter")))
def finetune(
    task,
    init,
    train,
    out,
    eval=None,
    *,
    epochs=3,
    batch_size=32,
    lr=None,
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
    lora_rank=None,
    lora_alpha=None,
    lora_targets=LORA_TARGETS,
    save_adapter=False,
    **options,
):
    """Fine-tune a model directory on a task and write a new model directory.

    Args:
        task: "classify", "ner" or "qa" (or a `kbert.tasks.Task`).
        init: model directory to start from.
        train: training data file.
        out: model directory to write (atomically, when training ends).
        eval: evaluation data file: evaluated after every epoch; the epoch
            with the best task metric is the one saved.
        epochs, batch_size, weight_decay: as in BERT.
        lr: peak learning rate (default `DEFAULT_LR`, 3e-5; with `lora_rank`,
            `LORA_LR`, 2e-3).
        warmup: fraction of all steps (< 1) or a step count.
        seq_len: sequence length (default 128, 384 for QA); at most the
            model's `max_position_embeddings`.
        dropout: dropout of a new head.
        seed: seed of the head's initial weights, dropout and data order.
        early_stopping: stop after this many epochs without improvement.
        eval_batch_size: batch size of evaluation.
        xla: compile the train step with XLA (`jit_compile`).
        progress: Keras progress bars.
        overwrite: replace an existing `out` that is not a kbert model
            directory (never one holding an input or the current directory).
        lora_rank: train LoRA adapters of this rank (Keras' `enable_lora`)
            and the head only; every other encoder weight stays frozen (see
            `kbert.training.lora`).
        lora_alpha: LoRA scale numerator (update = alpha / rank * A @ B);
            default: the rank (scale 1, as Keras and PEFT).
        lora_targets: layers that get LoRA (default: all of them): names
            among `query`, `key`, `value`, `attention_output`,
            `intermediate`, `output`, `pooler`, or the groups `attention`,
            `ffn`, `all` (a list or a comma-separated string).
        save_adapter: with `lora_rank`, write to `out` only the adapter
            (`adapter.safetensors`: LoRA and head weights, checked against a
            hash of `init`'s weights) instead of the merged model directory;
            `kbert.apply_adapter(init, out, model_dir)` makes the model dir.
        **options: task options (columns, CoNLL tag column, QA windowing...;
            see `kbert.tasks`); one the task does not take is a `ConfigError`.

    Returns:
        dict with `model`, `metrics` and `model_dir`. The model directory also
        holds `logs/` (TensorBoard) and `training_curve.png` (loss and the
        eval metric per epoch). With LoRA `model` is the merged plain model
        and `metrics["lora"]` has the settings and trainable parameters; with
        `save_adapter`, `model_dir` is None and `adapter` is the directory.

    Examples:
    ```python
    kbert.finetune("classify", "runs/minilm", "sst2/train.tsv", "runs/sst2",
                   eval="sst2/dev.tsv", epochs=3, lr=3e-5)
    ```
    """
    import keras

    from kbert.model_dir import load_model, read_model_dir, save_model
    from kbert.tasks import Task, get_task
    from kbert.training.callbacks import EpochEvaluator
    from kbert.training.optimizer import make_optimizer
    from kbert.training.optimizer import warmup_steps as get_warmup_steps
    from kbert.training.options import task_options

    if isinstance(task, Task):
        if options:
            raise KbertError(f"{sorted(options)[0]}: give options to the Task object, not with it")
    else:
        task = get_task(task, **task_options(task, options, split="train"))
    from kbert.training.lora import requested_lora

    lora = requested_lora(lora_rank, lora_alpha, lora_targets, save_adapter)
    if lr is None:
        lr = DEFAULT_LR if lora is None else LORA_LR
    info = read_model_dir(init)
    seq_len = check_seq_len(task.default_seq_len if seq_len is None else seq_len, info.config)
    _check_positive(epochs=epochs, batch_size=batch_size, lr=lr, eval_batch_size=eval_batch_size)
    tokenizer = info.tokenizer()
    train_data = task.read(train, split="train")
    eval_data = task.read(eval, split="eval") if eval is not None else None
    labels = task.make_labels(train_data, eval_data)
    task.configure(labels)

    keras.utils.set_random_seed(seed)
    base = load_model(init)
    if info.task == task.name and (info.labels or None) == labels and task.matches(base, labels):
        model = base  # go on training the same head
    else:
        from kbert.tasks.registry import spec

        model = task.build(spec(info.task).encoder(base), labels, dropout)
    require_space(out, 4 * model.count_params())  # float32 weights, before training
    if lora is not None:
        from kbert.tasks.registry import spec
        from kbert.training.lora import add_lora, weights_sha256

        encoder = spec(info.task).encoder(base)
        base_sha256 = weights_sha256(encoder)
        counts = add_lora(model, encoder, lora)
        print(f"kbert: LoRA rank {lora.rank} (alpha {lora.alpha:g}) on {', '.join(lora.targets)}: "
              f"{counts['trainable']:,} of {counts['total']:,} parameters train ({counts['trainable_percent']:.2f}%)",
              file=sys.stderr, flush=True)

    try:
        train_ds, batches = task.train_dataset(train_data, tokenizer, labels, seq_len, batch_size, seed)
    except DataError as e:  # about the rows of `train` as a whole (e.g. no QA answer located): name it
        raise DataError(f"{train}: {e}") from None
    train_ds = without_autotune(train_ds)
    unlocated = getattr(task, "unlocated", None)  # QA answers not found in their context
    if unlocated:
        print(f"kbert: {train}: {len(unlocated)} of {len(train_data)} training questions left out: answer not found "
              f"in its context (first: {unlocated[0]!r})", file=sys.stderr, flush=True)
    total = epochs * batches
    warmup_steps = get_warmup_steps(warmup, total)
    model.compile(
        optimizer=make_optimizer(lr, total, warmup_steps, weight_decay=weight_decay),
        jit_compile=bool(xla),
        **task.compile_args(labels),
    )
    # The optimizer's slots are made here, eagerly. Without a tf.distribute
    # strategy Keras makes them inside the first trace of the train step, and a
    # tf.function that creates variables is traced twice. Measured (MiniLM, seq
    # 64, batch 32, 1 thread, CPU seconds): first step 21.6-25.4 before, 12.2-13.4
    # after; a later step takes 1.9 (benchmarks/finetune_phases.py).
    model.optimizer.build(model.trainable_variables)

    work = os.fspath(out).rstrip("/\\") + ".work"
    shutil.rmtree(work, ignore_errors=True)
    log_dir = os.path.join(work, "logs")
    evaluator = EpochEvaluator(
        task, eval_data, tokenizer, labels, seq_len, eval_batch_size, early_stopping,
    )
    callbacks = [evaluator, keras.callbacks.TensorBoard(log_dir=log_dir)]
    start = time.time()
    with warnings.catch_warnings():
        # Taggers and QA models do not use the pooler; Keras warns about its
        # missing gradients on every run.
        warnings.filterwarnings("ignore", message="Gradients do not exist for variables")
        model.fit(
            train_ds, epochs=epochs, steps_per_epoch=batches, callbacks=callbacks,
            verbose=1 if progress else 2, shuffle=False,  # the datasets shuffle
        )
    wall = time.time() - start
    evaluator.restore_best(model)

    results = {
        "task": task.name,
        "init": os.fspath(init),
        "train": {"file": os.fspath(train), "examples": len(train_data),
                  **({"unlocated_answers": len(unlocated), "unlocated_ids": unlocated[:20]} if unlocated else {})},
        **evaluator.records(eval, epochs=epochs, batch_size=batch_size, lr=lr, warmup_steps=warmup_steps,
                            seq_len=seq_len, seed=seed, train_wall_time_s=round(wall, 1)),
    }
    if lora is not None:
        results["lora"] = {**lora.to_dict(), "parameters": counts, "base_weights_sha256": base_sha256,
                           "saved": "adapter" if save_adapter else "merged"}
        if save_adapter:
            return _finish_adapter(model, task, labels, dropout, seq_len, lora, init, info, base_sha256, counts,
                                   results, out, evaluator, log_dir, work, overwrite)
        from kbert.training.lora import merge_lora

        model = merge_lora(model)
    model_dir = save_model(
        model, out, vocab=info.vocab, lowercase=info.lowercase, labels=labels or [],
        seq_len=seq_len, metrics=results, task_options=task.options(),
    )
    if os.path.isdir(log_dir):
        shutil.move(log_dir, os.path.join(model_dir.path, "logs"))
    shutil.rmtree(work, ignore_errors=True)
    _save_curve(model_dir.path, task, evaluator)
    return {"model": model, "metrics": results, "model_dir": model_dir}


def _finish_adapter(model, task, labels, dropout, seq_len, lora, init, info, base_sha256, counts, results, out,
                    evaluator, log_dir, work, overwrite):
    """Write `out` as a LoRA adapter directory (`kbert.training.lora`)."""
    from kbert.outputs import output_dir
    from kbert.training.lora import adapter_metadata, merge_lora, trainable_weights, write_adapter

    metadata = adapter_metadata(task, labels, dropout, seq_len, lora, init, info, base_sha256, counts, results)
    with output_dir(out, "adapter", inputs=(init,), overwrite=overwrite) as tmp:
        write_adapter(tmp, trainable_weights(model), metadata)
    if os.path.isdir(log_dir):
        shutil.move(log_dir, os.path.join(out, "logs"))
    shutil.rmtree(work, ignore_errors=True)
    _save_curve(os.fspath(out), task, evaluator)
    return {"model": merge_lora(model), "metrics": results, "model_dir": None, "adapter": os.fspath(out)}


def _save_curve(path, task, evaluator):
    """training_curve.png: the loss and the eval metrics of every epoch."""
    from kbert.training.curves import save_training_curve

    history = evaluator.history
    names = [k for k, v in (history[0].get("eval") or {}).items() if isinstance(v, float)] if history else []
    names.sort(key=lambda name: name != task.metric)  # the task metric first
    metrics = {f"eval {name}": [(h.get("eval") or {}).get(name) for h in history] for name in names}
    save_training_curve(path, [h["epoch"] for h in history], {"training loss": [h["loss"] for h in history]},
                        metrics, x_label="epoch", title=f"fine-tuning: {task.name}", best=evaluator.best_epoch)


def without_autotune(dataset):
    """`dataset` without tf.data's autotuning thread (the same batches).

    The thread re-tunes the pipeline at growing intervals and sleeps in
    between; deleting the iterator waits for the sleep to end. When `fit`
    returned, that wait took 20-25 s of wall time (no CPU) in 7 of 17 whole
    runs on MiniLM, 1,000 SST-2 rows, 1 thread (gdb: the main thread in
    `RootDataset::Iterator::~Iterator`, the tuning thread in
    `Model::OptimizeLoop`). The pipeline (tokenizing a batch) takes
    milliseconds against a train step's seconds: there is nothing to tune.
    """
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset):
        return dataset
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def _check_positive(**values):
    for name, value in values.items():
        if not value > 0:
            raise KbertError(f"{name}: expected a positive number, got {value!r}")


def evaluate(model_dir, data, batch_size=64, seq_len=None, **options):
    """Metrics of a fine-tuned model directory on a labelled data file.

    Args:
        model_dir: a classify, ner or qa model directory.
        data: data file in the task's format (labels must be the model's).
        batch_size: batch size.
        seq_len: default: the model directory's.
        **options: task options for reading the file (columns...; `articles`
            slices a SQuAD file); one the task does not take is a `ConfigError`.

    Returns:
        The task's metrics dict (also `examples`).

    Examples:
    ```python
    kbert.evaluate("runs/sst2", "sst2/dev.tsv")   # {"accuracy": 0.91, ...}
    ```
    """
    task, info, model = _open(model_dir, options)
    seq_len = check_seq_len(info.seq_len if seq_len is None else seq_len, info.config)
    examples = task.read(data, split="eval")
    labels = info.labels or None
    task.configure(labels)
    metrics = task.evaluate(model, examples, info.tokenizer(), labels, seq_len, batch_size)
    return {**metrics, "examples": len(examples)}


def predict(model_dir, texts, pairs=None, batch_size=32, seq_len=None, **options):
    """Predictions of a model directory on raw text.

    Args:
        model_dir: a classify, ner or qa model directory.
        texts: list of strings (for QA: the questions).
        pairs: second texts for sentence-pair models; for QA the contexts.

    Returns:
        One dict per text: `label`, `probability`, `probabilities` (classify)
        or `score` (regression); `entities` with character offsets (ner);
        `answer`, `score`, `start`, `end` (qa).

    Examples:
    ```python
    kbert.predict("runs/sst2", ["a gripping, funny film"])
    # [{"label": "1", "probability": 0.98, "probabilities": {"0": 0.02, "1": 0.98}}]
    ```
    """
    task, info, model = _open(model_dir, options)
    seq_len = check_seq_len(info.seq_len if seq_len is None else seq_len, info.config)
    texts = [texts] if isinstance(texts, str) else list(texts)
    if pairs is not None:
        pairs = [pairs] if isinstance(pairs, str) else list(pairs)
        if len(pairs) != len(texts):
            raise KbertError(f"got {len(texts)} texts but {len(pairs)} pairs")
    labels = info.labels or None
    task.configure(labels)
    return task.predict(model, info.tokenizer(), labels, seq_len, texts, pairs, batch_size)


def _open(model_dir, options):
    from kbert.model_dir import load_model, read_model_dir
    from kbert.tasks import TASKS, model_dir_task
    from kbert.training.options import task_options

    info = read_model_dir(model_dir)
    if info.task not in TASKS:
        raise KbertError(
            f"{info.path}: a {info.task} model directory; evaluate and predict need a fine-tuned "
            f"{'/'.join(TASKS)} model (kbert finetune)"
        )
    # The options it was trained with (config.json), under those given now.
    task = model_dir_task(info, **task_options(info.task, options, split="eval"))
    return task, info, load_model(model_dir)

