"""`kbert finetune classify|ner|qa`, `kbert evaluate`, `kbert predict`: click
wrappers over `kbert.finetune` (registered on the `kbert` group in cli.py)."""

import inspect
import json
import os

import click

from kbert.runtime import start_tensorflow

_COMMON = [
    click.option("--init", required=True, type=click.Path(file_okay=False),
                 help="Model directory to start from (kbert pretrain / import / finetune)."),
    click.option("--train", required=True, type=click.Path(dir_okay=False), help="Training data file."),
    click.option("--eval", "eval_", type=click.Path(dir_okay=False),
                 help="Evaluation file: evaluated every epoch, best epoch kept."),
    click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write."),
    click.option("--epochs", default=3, show_default=True, type=click.IntRange(min=1)),
    click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1)),
    click.option("--lr", default=3e-5, show_default=True, type=float, help="Peak learning rate (AdamW)."),
    click.option("--warmup", default=0.1, show_default=True, type=float,
                 help="Warm-up: fraction of all steps, or a step count."),
    click.option("--seq-len", type=click.IntRange(min=8), help="Default 128 (qa: 384)."),
    click.option("--weight-decay", default=0.01, show_default=True, type=float),
    click.option("--dropout", default=0.1, show_default=True, type=float, help="Dropout of a new head."),
    click.option("--seed", default=42, show_default=True, type=int),
    click.option("--early-stopping", type=click.IntRange(min=1), metavar="EPOCHS",
                 help="Stop after this many epochs without a better eval metric."),
    click.option("--xla", is_flag=True, help="Compile the train step with XLA."),
]

_CLASSIFY = [
    click.option("--text-column", help="Text column (name, or index with --no-header)."),
    click.option("--pair-column", help="Second-text column for sentence pairs."),
    click.option("--label-column", help="Label column."),
    click.option("--format", "format", type=click.Choice(["tsv", "csv", "jsonl"]),
                 help="File format (default: from the extension; .txt is TSV)."),
    click.option("--no-header", "header", flag_value=False, default=None,
                 help="CSV/TSV files have no header row."),
]
_REGRESSION = click.option("--regression/--classification", default=None,
                           help="Force regression or classification (default: regression for non-integer labels).")
_NER = [
    click.option("--tag-column", type=int, help="Tag column of the CoNLL file (default: last)."),
    click.option("--word-column", type=int, help="Word column (default: 0)."),
]
_NER_TRAIN = [
    click.option("--scheme", type=click.Choice(["IOB1", "IOB2", "BIOES"]),
                 help="Tagging scheme to learn (default IOB2; input files are converted)."),
    click.option("--stride", type=click.IntRange(min=0), help="Words of context between windows of a long sentence."),
]
_QA = [
    click.option("--doc-stride", type=click.IntRange(min=1), help="Context tokens between windows (default 128)."),
    click.option("--max-query-length", type=click.IntRange(min=1), help="Question pieces kept (default 64)."),
    click.option("--max-answer-length", type=click.IntRange(min=1), help="Longest answer in pieces (default 30)."),
    click.option("--n-best", type=click.IntRange(min=1), help="Start/end candidates per window (default 20)."),
    click.option("--null-threshold", type=float, help="SQuAD v2 no-answer threshold (default 0)."),
]
_QA_TRAIN = [
    click.option("--articles", help="START:STOP slice of the training file's articles."),
    click.option("--eval-articles", help="START:STOP slice of the eval file's articles."),
]


def _options(*groups):
    def decorate(f):
        for option in reversed([o for g in groups for o in (g if isinstance(g, list) else [g])]):
            f = option(f)
        return f

    return decorate


@click.group()
def finetune():
    """Fine-tune a model directory: classify, ner or qa.

    Every epoch is evaluated on --eval with the task metric and the best epoch is
    saved to --out with metrics.json and TensorBoard logs.
    """


def _run(task, init, train, eval_, out, **options):
    start_tensorflow()
    from kbert.training.finetune import finetune as run

    common = {k: options.pop(k) for k in list(options) if k in _FINETUNE_ARGS}
    task_options = {k: v for k, v in options.items() if v is not None}
    result = run(task, init, train, out, eval=eval_, **common, **task_options)
    metrics = result["metrics"]
    click.echo(json.dumps({k: metrics[k] for k in ("eval", "best_epoch", "train_wall_time_s") if k in metrics},
                          indent=2))
    click.echo(f"wrote {result['model_dir'].path}")


_FINETUNE_ARGS = {
    "epochs", "batch_size", "lr", "warmup", "seq_len", "weight_decay", "dropout", "seed", "early_stopping", "xla",
}


@finetune.command()
@_options(_COMMON, _CLASSIFY, _REGRESSION)
def classify(init, train, eval_, out, **options):
    """Sequence / sentence-pair classification, or regression.

    CSV, TSV (GLUE layouts: SST-2, MRPC's msr_paraphrase_*.txt) or JSONL.
    Example: kbert finetune classify --init runs/minilm --train sst2/train.tsv --eval sst2/dev.tsv --out runs/sst2
    """
    _run("classify", init, train, eval_, out, **options)


@finetune.command()
@_options(_COMMON, _NER, _NER_TRAIN)
def ner(init, train, eval_, out, **options):
    """Named-entity recognition on CoNLL files (IOB1, IOB2 or BIOES tags).

    Example: kbert finetune ner --init runs/minilm --train conll2003/train.txt --eval conll2003/valid.txt --out runs/ner
    """
    _run("ner", init, train, eval_, out, **options)


@finetune.command()
@_options(_COMMON, _QA, _QA_TRAIN)
def qa(init, train, eval_, out, **options):
    """Extractive question answering on SQuAD v1.1 / v2.0 JSON.

    Example: kbert finetune qa --init runs/minilm --train squad/train-v1.1.json --eval squad/dev-v1.1.json --out runs/qa
    """
    _run("qa", init, train, eval_, out, **options)


def _task_options(model_dir, options):
    """The given (non-None) reading options, checked against the model's task."""
    from kbert.errors import KbertError
    from kbert.model_dir import read_model_dir
    from kbert.tasks import TASKS

    info = read_model_dir(model_dir)
    given = {k: v for k, v in options.items() if v is not None}
    if info.task not in TASKS:
        return info, given
    accepted = set(inspect.signature(TASKS[info.task].__init__).parameters)
    if info.task == "qa" and "articles" in given:
        given["eval_articles"] = given.pop("articles")
    for name in given:
        if name not in accepted:
            raise KbertError(f"--{name.replace('_', '-')} does not apply to a {info.task} model")
    return info, given


@click.command()
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="Labelled data file.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--seq-len", type=click.IntRange(min=8), help="Default: the model directory's.")
@_options(_CLASSIFY, _NER, _QA)
@click.option("--articles", help="QA: START:STOP slice of the file's articles.")
def evaluate(model_dir, data, batch_size, seq_len, **options):
    """Evaluate a fine-tuned model directory; prints the metrics as JSON.

    Example: kbert evaluate runs/sst2 --data sst2/dev.tsv
    """
    _, task_options = _task_options(model_dir, options)
    start_tensorflow()
    from kbert.training.finetune import evaluate as run

    click.echo(json.dumps(run(model_dir, data, batch_size=batch_size, seq_len=seq_len, **task_options), indent=2))


@click.command()
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("texts", nargs=-1)
@click.option("--pair", "pairs", multiple=True, help="Second text (sentence pairs), one per TEXT.")
@click.option("--context", "contexts", multiple=True, help="QA: the context of each question TEXT.")
@click.option("--input", "input_path", type=click.Path(dir_okay=False),
              help="Many inputs: .txt = one text per line; .tsv/.csv/.jsonl with text (and pair, or "
                   "question/context for QA) columns.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--text-column", help="--input column of the texts.")
@click.option("--pair-column", help="--input column of the second texts / QA contexts.")
def predict(model_dir, texts, pairs, contexts, input_path, batch_size, text_column, pair_column):
    """Predict on raw text; prints one JSON object per input.

    classify: label + probabilities; ner: entities with character offsets;
    qa: answer text + score + character span (give --context).
    Examples: kbert predict runs/sst2 "a gripping film" ;
    kbert predict runs/qa "Who wrote it?" --context "It was written by Ann."
    """
    from kbert.errors import KbertError

    info, _ = _task_options(model_dir, {})
    texts, pairs = list(texts), list(pairs) + list(contexts)
    if input_path:
        more, more_pairs = _read_inputs(input_path, info.task, text_column, pair_column)
        if pairs and more_pairs is None:
            raise KbertError("--pair/--context cannot be combined with an --input file without pairs")
        texts += more
        pairs = pairs + (more_pairs or []) if (pairs or more_pairs) else []
    if not texts:
        raise KbertError("nothing to predict: give TEXT arguments or --input FILE")
    if pairs and len(pairs) != len(texts):
        raise KbertError(f"got {len(texts)} texts but {len(pairs)} --pair/--context values")
    start_tensorflow()
    from kbert.training.finetune import predict as run

    for text, result in zip(texts, run(model_dir, texts, pairs or None, batch_size=batch_size)):
        click.echo(json.dumps({"text": text, **result}, ensure_ascii=False))


def _read_inputs(path, task, text_column, pair_column):
    from kbert.data.classification import read_text_data
    from kbert.io import iter_text_lines

    if os.path.splitext(path)[1].lower() == ".txt" and not text_column:
        lines = [line for _, line in iter_text_lines(path) if line.strip()]
        return lines, None
    if task == "qa":
        text_column = text_column or "question"
        pair_column = pair_column or "context"
    data = read_text_data(path, text_column=text_column, pair_column=pair_column, require_labels=False)
    return data.texts, data.pairs


COMMANDS = [finetune, evaluate, predict]
