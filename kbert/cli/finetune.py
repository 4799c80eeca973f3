"""`kbert finetune classify|ner|qa|embed`, `kbert evaluate`, `kbert predict`: click
wrappers over `kbert.finetune`, `kbert.evaluate` and `kbert.predict`, whose
signatures (and the task classes') give every default."""

import json

import click

from kbert.cli.options import api_default
from kbert.runtime import start_tensorflow
from kbert.training.finetune import DEFAULT_LR, LORA_LR
from kbert.training.finetune import evaluate as run_evaluate
from kbert.training.finetune import finetune as run_finetune
from kbert.training.finetune import predict as run_predict
from kbert.training.options import option_defaults, task_class


def _default(name):
    return api_default(run_finetune, name)


_COMMON = [
    click.option("--init", required=True, type=click.Path(file_okay=False),
                 help="Model directory to start from (kbert pretrain / import / finetune)."),
    click.option("--train", required=True, type=click.Path(dir_okay=False), help="Training data file."),
    click.option("--eval", "eval_", type=click.Path(dir_okay=False),
                 help="Evaluation file: evaluated every epoch, best epoch kept."),
    click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write."),
    click.option("--overwrite", is_flag=True,
                 help="Replace an existing --out that is not a kbert model directory (its files are lost)."),
    click.option("--epochs", default=_default("epochs"), show_default=True, type=click.IntRange(min=1)),
    click.option("--batch-size", default=_default("batch_size"), show_default=True, type=click.IntRange(min=1)),
    click.option("--lr", type=float, help=f"Peak learning rate (AdamW) [default: {DEFAULT_LR:g}; with --lora-rank "
                                          f"{LORA_LR:g}]."),
    click.option("--warmup", default=_default("warmup"), show_default=True, type=float,
                 help="Warm-up: fraction of all steps, or a step count."),
    click.option("--weight-decay", default=_default("weight_decay"), show_default=True, type=float),
    click.option("--dropout", default=_default("dropout"), show_default=True, type=float,
                 help="Dropout of a new head."),
    click.option("--seed", default=_default("seed"), show_default=True, type=int),
    click.option("--early-stopping", type=click.IntRange(min=1), metavar="EPOCHS",
                 help="Stop after this many epochs without a better eval metric."),
    click.option("--xla", is_flag=True, help="Compile the train step with XLA."),
    click.option("--lora-rank", type=click.IntRange(min=1), metavar="R",
                 help="LoRA: train rank-R adapters (Keras enable_lora) and the head only; the encoder stays "
                      "frozen."),
    click.option("--lora-alpha", type=click.FloatRange(min=0, min_open=True), metavar="A",
                 help="LoRA scale numerator: the update is A/R * (a @ b) (default: R, scale 1)."),
    click.option("--lora-targets", default=",".join(_default("lora_targets")), show_default=True,
                 callback=lambda ctx, param, value: tuple(t.strip() for t in value.split(",") if t.strip()),
                 help="LoRA layers: query, key, value, attention_output, intermediate, output (of each block), "
                      "pooler, or the groups attention, ffn, all (comma-separated)."),
    click.option("--save-adapter", is_flag=True,
                 help="With --lora-rank: write only the adapter (LoRA + head weights, a few MB) to --out; "
                      "kbert apply-adapter INIT OUT --out DIR makes the model directory."),
]


def _seq_len(task):
    return click.option("--seq-len", type=int,
                        help=f"Tokens per example, at most the model's max_position_embeddings "
                             f"(default: the task's, {task_class(task).default_seq_len}).")


def _task_option_groups(task, defaults):
    """Reading/windowing options of one task. `defaults=True` shows the task's
    defaults (finetune TASK); `False` leaves them unset so that only what is
    given reaches the API (evaluate: the task comes from the model dir)."""
    values = option_defaults(task)

    def default(name):
        return {"default": values[name], "show_default": True} if defaults else {}

    def hint(name, what):
        return what if defaults else f"{what} (default {values[name]})"

    if task == "classify":
        return [
            click.option("--text-column", help="Text column (name, or index with --no-header)."),
            click.option("--pair-column", help="Second-text column for sentence pairs."),
            click.option("--label-column", help="Label column."),
            click.option("--format", "format", type=click.Choice(["tsv", "csv", "jsonl"]),
                         help="File format (default: from the extension; .txt is TSV)."),
            click.option("--header/--no-header", "header", default=values["header"] if defaults else None,
                         help="Whether CSV/TSV files have a header row (default: they have)."),
        ]
    if task == "embed":
        return [
            click.option("--anchor-column", help="Pair files: anchor (query) column."),
            click.option("--positive-column", help="Pair files: positive (or second text) column."),
            click.option("--negative-column", help="Pair files: hard-negative column ('' for none)."),
            click.option("--score-column", help="Pair files: similarity score / 0-1 label column ('' for none)."),
            click.option("--corpus", type=click.Path(dir_okay=False),
                         help="Retrieval evaluation: the corpus file (id and text columns, or .txt lines); the "
                              "evaluation file is then the queries."),
            click.option("--relevance", type=click.Path(dir_okay=False),
                         help="Retrieval evaluation: query-id, corpus-id[, score] rows (BEIR qrels)."),
        ]
    if task == "ner":
        return [
            click.option("--tag-column", type=int, **default("tag_column"),
                         help=hint("tag_column", "Tag column of the CoNLL file (-1: last).")),
            click.option("--word-column", type=int, **default("word_column"),
                         help=hint("word_column", "Word column.")),
        ]
    return [
        click.option("--doc-stride", type=click.IntRange(min=1), **default("doc_stride"),
                     help=hint("doc_stride", "Context tokens between windows.")),
        click.option("--max-query-length", type=click.IntRange(min=1), **default("max_query_length"),
                     help=hint("max_query_length", "Question pieces kept.")),
        click.option("--max-answer-length", type=click.IntRange(min=1), **default("max_answer_length"),
                     help=hint("max_answer_length", "Longest answer in pieces.")),
        click.option("--n-best", type=click.IntRange(min=1), **default("n_best"),
                     help=hint("n_best", "Start/end candidates per window.")),
        click.option("--null-threshold", type=float, **default("null_threshold"),
                     help=hint("null_threshold", "SQuAD v2 no-answer threshold.")),
    ]


_REGRESSION = click.option("--regression/--classification", default=option_defaults("classify")["regression"],
                           help="Force regression or classification (default: regression for non-integer labels).")
_NER_TRAIN = [
    click.option("--scheme", type=click.Choice(["IOB1", "IOB2", "BIOES"]), default=option_defaults("ner")["scheme"],
                 show_default=True, help="Tagging scheme to learn (input files are converted)."),
    click.option("--stride", type=click.IntRange(min=0), help="Words of context between windows of a long sentence."),
]
_QA_TRAIN = [
    click.option("--articles", help="START:STOP slice of the training file's articles."),
    click.option("--eval-articles", help="START:STOP slice of the eval file's articles."),
]
_EMBED_TRAIN = [
    click.option("--format", "format", type=click.Choice(["tsv", "csv", "jsonl"]),
                 help="Pair file format (default: from the extension; .json is SQuAD or JSON Lines)."),
    click.option("--header/--no-header", "header", default=option_defaults("embed")["header"],
                 help="Whether CSV/TSV files have a header row (default: they have)."),
    click.option("--loss", type=click.Choice(["mnrl", "cosine"]),
                 help="mnrl: in-batch negatives on (anchor, positive[, negative]); cosine: squared error of the "
                      "cosine on (anchor, other, score) (default: cosine when there is a score column)."),
    click.option("--scale", type=click.FloatRange(min=0, min_open=True), default=option_defaults("embed")["scale"],
                 show_default=True, help="mnrl: cosines times this (1 / temperature)."),
    click.option("--pooling", type=click.Choice(["mean", "cls", "max", "mean_sqrt_len"]),
                 help="Pooling of a new embedder (default: the --init model's, else mean)."),
    click.option("--normalize/--no-normalize", "normalize", default=None,
                 help="L2-normalize a new embedder's vectors (default: the --init model's, else yes)."),
    *_QA_TRAIN,
]


def _options(*groups):
    def decorate(f):
        for option in reversed([o for g in groups for o in (g if isinstance(g, list) else [g])]):
            f = option(f)
        return f

    return decorate


@click.group()
def finetune():
    """Fine-tune a model directory: classify, ner, qa or embed.

    Every epoch is evaluated on --eval with the task metric and the best epoch is
    saved to --out with metrics.json, training_curve.png and TensorBoard logs.
    """


def _run(task, init, train, eval_, out, **options):
    start_tensorflow()
    result = run_finetune(task, init, train, out, eval=eval_, **options)
    metrics = result["metrics"]
    click.echo(json.dumps({k: metrics[k] for k in ("eval", "best_epoch", "train_wall_time_s") if k in metrics},
                          indent=2))
    click.echo(f"wrote {result['adapter'] if result.get('adapter') else result['model_dir'].path}")


@finetune.command()
@_options(_COMMON, _seq_len("classify"), _task_option_groups("classify", True), _REGRESSION)
def classify(init, train, eval_, out, **options):
    """Sequence / sentence-pair classification, or regression.

    CSV, TSV (GLUE layouts: SST-2, MRPC's msr_paraphrase_*.txt) or JSONL.
    Example: kbert finetune classify --init runs/minilm --train sst2/train.tsv --eval sst2/dev.tsv --out runs/sst2
    """
    _run("classify", init, train, eval_, out, **options)


@finetune.command()
@_options(_COMMON, _seq_len("ner"), _task_option_groups("ner", True), _NER_TRAIN)
def ner(init, train, eval_, out, **options):
    """Named-entity recognition on CoNLL files (IOB1, IOB2 or BIOES tags).

    Example: kbert finetune ner --init runs/minilm --train conll2003/train.txt --eval conll2003/valid.txt --out runs/ner
    """
    _run("ner", init, train, eval_, out, **options)


@finetune.command()
@_options(_COMMON, _seq_len("qa"), _task_option_groups("qa", True), _QA_TRAIN)
def qa(init, train, eval_, out, **options):
    """Extractive question answering on SQuAD v1.1 / v2.0 JSON.

    Example: kbert finetune qa --init runs/minilm --train squad/train-v1.1.json --eval squad/dev-v1.1.json --out runs/qa
    """
    _run("qa", init, train, eval_, out, **options)


@finetune.command()
@_options(_COMMON, _seq_len("embed"), _task_option_groups("embed", True), _EMBED_TRAIN)
def embed(init, train, eval_, out, **options):
    """Sentence embeddings from text pairs (model.fit, in-batch negatives).

    TSV/CSV/JSONL (anchor, positive[, negative]) or (anchor, other, score) rows, or
    a SQuAD JSON file ((question, paragraph) pairs; --articles slices it). --eval: a
    SQuAD file or pair file without scores (retrieval: Recall@1/@10, MRR@10, nDCG@10),
    queries with --corpus and --relevance, or scored pairs (Spearman; 0/1: accuracy,
    F1, ROC AUC).
    Example: kbert finetune embed --init runs/minilm --train pairs.tsv --eval dev_pairs.tsv --out runs/emb
    """
    _run("embed", init, train, eval_, out, **options)


@click.command()
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="Labelled data file.")
@click.option("--batch-size", default=api_default(run_evaluate, "batch_size"), show_default=True,
              type=click.IntRange(min=1))
@click.option("--seq-len", type=int, help="Default: the model directory's.")
@_options(*(_task_option_groups(task, False) for task in ("classify", "ner", "qa", "embed")))
@click.option("--articles", help="SQuAD files (qa, embed): START:STOP slice of the file's articles.")
def evaluate(model_dir, data, batch_size, seq_len, **options):
    """Evaluate a fine-tuned model directory; prints the metrics as JSON.

    Reading options apply to the model's task (a classify model takes
    --text-column, not --doc-stride). An embed model is evaluated as retrieval
    (a SQuAD file, pairs without scores, or queries with --corpus and
    --relevance) or on scored pairs.
    Example: kbert evaluate runs/sst2 --data sst2/dev.tsv
    """
    start_tensorflow()
    given = {k: v for k, v in options.items() if v is not None}
    click.echo(json.dumps(run_evaluate(model_dir, data, batch_size=batch_size, seq_len=seq_len, **given), indent=2))


@click.command()
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("texts", nargs=-1)
@click.option("--pair", "pairs", multiple=True, help="Second text (sentence pairs), one per TEXT.")
@click.option("--context", "contexts", multiple=True, help="QA: the context of each question TEXT.")
@click.option("--input", "input_path", type=click.Path(dir_okay=False),
              help="Many inputs: .txt = one text per line; .tsv/.csv/.jsonl with text (and pair, or "
                   "question/context for QA) columns.")
@click.option("--batch-size", default=api_default(run_predict, "batch_size"), show_default=True,
              type=click.IntRange(min=1))
@click.option("--text-column", help="--input column of the texts.")
@click.option("--pair-column", help="--input column of the second texts / QA contexts.")
def predict(model_dir, texts, pairs, contexts, input_path, batch_size, text_column, pair_column):
    """Predict on raw text; prints one JSON object per input.

    classify: label + probabilities; ner: entities with character offsets;
    qa: answer text + score + character span (give --context); embed: the
    embedding (with --pair: the cosine of the two texts).
    Examples: kbert predict runs/sst2 "a gripping film" ;
    kbert predict runs/qa "Who wrote it?" --context "It was written by Ann."
    """
    from kbert.training.options import prediction_inputs

    texts, pairs = prediction_inputs(model_dir, texts, list(pairs) + list(contexts), input_path,
                                     text_column, pair_column)
    start_tensorflow()
    for text, result in zip(texts, run_predict(model_dir, texts, pairs, batch_size=batch_size)):
        click.echo(json.dumps({"text": text, **result}, ensure_ascii=False))


COMMANDS = [finetune, evaluate, predict]
