"""Pre-train a BERT (MLM + NSP) with `model.fit`: from text files to a model dir.

Glue between `kbert.data.pretraining` (examples), `kbert.training` (optimizer,
precision, strategy) and `kbert.model_dir` (the output). Training runs in chunks
of `checkpoint_every` steps (Keras "epochs"), so Keras' `BackupAndRestore` saves
weights, optimizer state and the step counter after each chunk: re-running the same
command after a crash (even `kill -9`) resumes from the last chunk.

The model directory also gets `logs/` (TensorBoard) and `training_curve.png`
(losses and accuracies per chunk, the held-out accuracy at the end). Importing
this module needs no Keras (the CLI reads its defaults from `pretrain`'s
signature).
"""

import json
import math
import os
import shutil
import time

from kbert.config import BertConfig, check_seq_len
from kbert.errors import KbertError
from kbert.outputs import require_space, writes_output

WORK_SUFFIX = ".work"


def _resume_chunk(backup_dir):
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return int(json.load(f).get("epoch", 0))


def _baseline(train_ds, eval_ds, batches=20):
    """Held-out MLM accuracy of always predicting the most frequent masked token
    of the training data (the baseline a model must beat)."""
    import numpy as np

    counts = {}
    for _, y, w in train_ds.take(batches):
        ids, weights = y["mlm"].numpy().ravel(), w["mlm"].numpy().ravel()
        for token, count in zip(*np.unique(ids[weights > 0], return_counts=True)):
            counts[int(token)] = counts.get(int(token), 0) + int(count)
    top = max(counts, key=counts.get)
    hits = total = 0.0
    for _, y, w in eval_ds:
        ids, weights = y["mlm"].numpy().ravel(), w["mlm"].numpy().ravel()
        hits += float(weights[ids == top].sum())
        total += float(weights.sum())
    return top, hits / max(total, 1.0)


def _inputs(arguments):
    """The paths `pretrain` reads (vocab and config may be objects instead)."""
    paths = [arguments[name] for name in ("vocab", "config") if isinstance(arguments[name], (str, os.PathLike))]
    return [*paths, arguments["corpus"], arguments["data"], arguments["eval_data"]]


def _chief(arguments):
    from kbert.runtime import is_chief

    return is_chief()


# Only the chief writes `out` (other workers keep their checkpoints in OUT.work),
# so only the chief claims it. OUT.work is the resume point: kept on failure.
@writes_output("model_dir", inputs=_inputs, when=_chief)
def pretrain(
    out,
    *,
    vocab,
    corpus=None,
    data=None,
    eval_data=None,
    config="tiny",
    data_config=None,
    lowercase=True,
    batch_size=32,
    steps=1000,
    learning_rate=1e-4,
    warmup=0.1,
    weight_decay=0.01,
    optimizer="adamw",
    clipnorm=1.0,
    accumulation_steps=1,
    precision="fp32",
    xla=False,
    checkpoint_every=500,
    eval_batches=50,
    holdout=0.02,
    split_sentences=False,
    next_sentence=True,
    progress=True,
    overwrite=False,
):
    """Pre-train BERT with masked LM (+ next-sentence prediction) and save a model dir.

    Args:
        out: model directory to write (written only when training completes).
        vocab: vocab.txt path or token list.
        corpus: text files/globs in BERT format; examples are built and masked on
            the fly (fresh masks every epoch), `holdout` of the documents are kept
            out for evaluation.
        data: alternatively, a directory written by `kbert pretrain-data`
            (static masks); `eval_data` is then another such directory, or the
            held-out documents of `corpus` are used.
        config: a `BertConfig`, a preset name or a path to a config JSON; its
            vocab_size is set from the vocab.
        data_config: `kbert.data.PretrainingConfig` (seq_len, masking, seed, ...).
        batch_size: global batch size (split over replicas).
        steps: training batches; rounded up to a multiple of `checkpoint_every`.
        learning_rate, warmup, weight_decay, optimizer, clipnorm,
        accumulation_steps: see `kbert.training.make_optimizer`; `warmup` is a
            fraction of `steps` (< 1) or a step count.
        precision: `fp32`, `mixed_float16` (loss scaling on) or `mixed_bfloat16`.
        xla: compile the train step with XLA.
        checkpoint_every: steps between checkpoints (resume points).
        eval_batches: held-out batches evaluated at the end.
        next_sentence: train the NSP head too (BERT); False for MLM only.
        overwrite: replace an existing `out` that is not a kbert model
            directory (never one holding an input or the current directory).

    Returns:
        dict with `model` (the Keras model), `metrics` and `model_dir` (the
        `ModelDir`, None on non-chief workers).
    """
    import keras

    from kbert.data import PretrainingConfig, data_errors, dynamic_dataset, read_data_info, tfrecord_dataset
    from kbert.model_dir import save_model
    from kbert.models import BertEncoder, BertPretrainer
    from kbert.tokenization import BertTokenizer, load_vocab
    from kbert.runtime import cluster, get_strategy
    from kbert.training.distribution import prepare_for_strategy
    from kbert.training.optimizer import make_optimizer, set_precision, warmup_steps as get_warmup_steps

    if (corpus is None) == (data is None):
        raise KbertError("give either corpus (text files) or data (a pretrain-data directory)")
    # Multi-worker collectives must be set up before TensorFlow runs any op.
    strategy = get_strategy()
    tokens = load_vocab(vocab) if isinstance(vocab, (str, os.PathLike)) else list(vocab)
    tokenizer = BertTokenizer(tokens, lowercase=lowercase)
    data_config = data_config or PretrainingConfig()
    if data is not None:
        # TFRecords fix seq_len and masking when written: their settings rule.
        info = read_data_info(data)
        data_config = info["config"]
        written = info.get("vocab_size")
        if written is not None and written != len(tokens):
            raise KbertError(
                f"{data}: written with a {written}-token vocab, but the vocab given has {len(tokens)} tokens"
            )
    if isinstance(config, str):
        config = BertConfig.from_json(config) if os.path.isfile(config) else BertConfig.preset(config)
    config = BertConfig(**{**config.to_dict(), "vocab_size": len(tokens)})
    check_seq_len(data_config.seq_len, config)
    if steps < 1 or checkpoint_every < 1 or batch_size < 1:
        raise KbertError("steps, checkpoint_every and batch_size must be positive")
    checkpoint_every = min(checkpoint_every, steps)
    chunks = math.ceil(steps / checkpoint_every)
    steps = chunks * checkpoint_every
    warmup_steps = get_warmup_steps(warmup, steps)

    where = cluster()
    chief = where.is_chief
    work = os.path.abspath(os.fspath(out)) + WORK_SUFFIX
    if not chief:  # each worker keeps its own checkpoints; only the chief writes `out`
        work = os.path.join(work, f"{where.task_type}-{where.task_index}")
    backup_dir, log_dir = os.path.join(work, "backup"), os.path.join(work, "logs")
    first_chunk = _resume_chunk(backup_dir)
    if first_chunk:
        print(f"resuming from step {first_chunk * checkpoint_every} ({backup_dir})")

    # A resumed run draws new examples rather than replaying the first chunks.
    seed = data_config.seed + first_chunk
    if data is not None:
        train_ds = tfrecord_dataset(data, batch_size, seed=seed)
    else:
        train_ds = dynamic_dataset(
            corpus, tokenizer, data_config, batch_size, seed=seed,
            split_sentences=split_sentences, holdout=holdout, split="train",
        )
    if eval_data is not None:
        eval_ds = tfrecord_dataset(eval_data, batch_size, shuffle=False, repeat=False)
    elif corpus is not None and holdout > 0:
        eval_ds = dynamic_dataset(
            corpus, tokenizer, data_config, batch_size, seed=data_config.seed,
            split_sentences=split_sentences, holdout=holdout, split="heldout", repeat=False,
        )
    else:
        eval_ds = None
    if eval_ds is not None:
        import tensorflow as tf

        # Cache the held-out batches and state their number: with an unknown
        # count Keras averages in a phantom empty step when the data runs out.
        eval_ds = eval_ds.take(eval_batches).cache()
        with data_errors():  # a held-out split without text is a DataError, not a traceback
            count = sum(1 for _ in eval_ds)
        if count == 0:
            raise KbertError("no held-out batches: raise holdout or lower batch_size")
        eval_ds = eval_ds.apply(tf.data.experimental.assert_cardinality(count))

    set_precision(precision)
    with strategy.scope():
        model = prepare_for_strategy(BertPretrainer(BertEncoder(config), next_sentence=next_sentence), strategy)
        cross_entropy = keras.losses.SparseCategoricalCrossentropy
        # Mean over real masked positions comes from _normalize_mlm_weights; Keras'
        # "mean_with_sample_weight" reduction fails under MultiWorkerMirroredStrategy.
        losses = {"mlm": cross_entropy(from_logits=True)}
        metrics = {"mlm": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}
        if next_sentence:
            losses["nsp"] = cross_entropy(from_logits=True)
            metrics["nsp"] = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        model.compile(
            optimizer=make_optimizer(
                learning_rate, steps, warmup_steps, name=optimizer, weight_decay=weight_decay,
                clipnorm=clipnorm, accumulation_steps=accumulation_steps,
            ),
            loss=losses,
            weighted_metrics=metrics,
            jit_compile=bool(xla),
        )
    if chief:  # the model dir, and a checkpoint: weights and AdamW's two moments
        require_space(out, 16 * model.count_params())
    train_ds = train_ds.map(_normalize_mlm_weights)
    eval_ds = eval_ds.map(_normalize_mlm_weights) if eval_ds is not None else None
    if not next_sentence:
        train_ds = train_ds.map(_drop_nsp)
        eval_ds = eval_ds.map(_drop_nsp) if eval_ds is not None else None

    callbacks = [
        keras.callbacks.BackupAndRestore(backup_dir, save_freq="epoch", double_checkpoint=True),
        keras.callbacks.TensorBoard(log_dir=log_dir, update_freq=max(1, min(100, checkpoint_every))),
    ]
    if chief:
        print(f"TensorBoard logs: {log_dir}")
    start = time.time()
    with data_errors():
        history = model.fit(
            train_ds, epochs=chunks, steps_per_epoch=checkpoint_every,
            callbacks=callbacks, verbose=1 if progress else 2, shuffle=False,  # datasets shuffle
        )
    wall = time.time() - start
    trained_steps = (chunks - first_chunk) * checkpoint_every

    results = {
        "steps": steps,
        "batch_size": batch_size,
        "seq_len": data_config.seq_len,
        "precision": precision,
        "train": {k: float(v[-1]) for k, v in history.history.items()} if history.history else {},
        "optimizer_iterations": int(model.optimizer.iterations.numpy()),
        "train_wall_time_s": round(wall, 1),
        "train_examples_per_s": round(trained_steps * batch_size / wall, 1) if trained_steps else None,
    }
    if eval_ds is not None:
        with data_errors():
            evaluated = model.evaluate(eval_ds, verbose=0, return_dict=True)
            token, baseline = _baseline(train_ds, eval_ds)
        results["eval"] = {k: float(v) for k, v in evaluated.items()}
        results["eval"]["most_frequent_token"] = tokenizer.vocab[token]
        results["eval"]["most_frequent_token_mlm_accuracy"] = baseline
    model_dir = None
    if chief:
        model_dir = save_model(
            model, out, vocab=tokens, lowercase=lowercase, seq_len=data_config.seq_len, metrics=results,
        )
        if os.path.isdir(log_dir):
            shutil.move(log_dir, os.path.join(model_dir.path, "logs"))
        shutil.rmtree(work, ignore_errors=True)
        _save_curve(model_dir.path, history.history, first_chunk, checkpoint_every, results.get("eval"), steps)
    return {"model": model, "metrics": results, "model_dir": model_dir}


def _save_curve(path, history, first_chunk, checkpoint_every, evaluated, steps):
    """training_curve.png: Keras' per-chunk losses and accuracies against the
    step, and the held-out accuracies measured at the end."""
    from kbert.training.curves import save_training_curve

    if not history:
        return
    n = len(next(iter(history.values())))
    x = [(first_chunk + i + 1) * checkpoint_every for i in range(n)]
    losses = {f"training {k}": v for k, v in history.items() if k.endswith("loss")}
    metrics = {f"training {k}": v for k, v in history.items() if not k.endswith("loss")}
    for name, value in (evaluated or {}).items():
        if name.endswith("accuracy") and not name.startswith("most_frequent"):
            metrics[f"held-out {name}"] = [None] * (n - 1) + [value]
    title = "pre-training" + (f" (resumed at step {first_chunk * checkpoint_every})" if first_chunk else "")
    save_training_curve(path, x, losses, metrics, x_label="step", title=title)


def _normalize_mlm_weights(x, y, w):
    """Scale each batch's MLM weights to average 1, so Keras' default loss
    reduction (sum of weighted losses / number of slots) is the mean cross-entropy
    over the real masked positions, as in BERT."""
    import tensorflow as tf

    weights = w["mlm"]
    scale = tf.cast(tf.size(weights), weights.dtype) / tf.maximum(tf.reduce_sum(weights), 1.0)
    return x, y, {**w, "mlm": weights * scale}


def _drop_nsp(x, y, w):
    return x, {"mlm": y["mlm"]}, {"mlm": w["mlm"]}
