"""`kbert distill`: a click wrapper over `kbert.distill`, whose signature gives
every default."""

import json

import click

from kbert.cli.options import api_default
from kbert.runtime import start_tensorflow
from kbert.training.distillation import distill as run_distill


def _default(name):
    return api_default(run_distill, name)


def _layers(ctx, param, value):
    return value.strip() if value else None


@click.command()
@click.option("--teacher", required=True, type=click.Path(file_okay=False),
              help="Fine-tuned classify/ner/qa model directory (kbert finetune).")
@click.option("--student", help="A preset (tiny, mini, small, medium, base, large: random weights, the teacher's "
                                "vocab) or a kbert model directory with the teacher's vocab.")
@click.option("--student-layers", callback=_layers, metavar="K|I,J,...",
              help="Start from teacher layers: K takes the top layer of each of K equal groups (6 -> 3: layers "
                   "1,3,5), or 0-based layers I,J,...; embeddings, pooler and head are copied too.")
@click.option("--train", required=True, type=click.Path(dir_okay=False), help="Labelled training file.")
@click.option("--unlabeled", multiple=True, type=click.Path(dir_okay=False),
              help="More text the teacher labels on the fly (repeatable): classify .txt lines or table; "
                   "ner .txt sentences; qa SQuAD JSON or question/context table.")
@click.option("--eval", "eval_", type=click.Path(dir_okay=False),
              help="Evaluation file: task metric and KL to the teacher every epoch, best epoch kept.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing --out that is not a kbert model directory (its files are lost).")
@click.option("--temperature", default=_default("temperature"), show_default=True,
              type=click.FloatRange(min=0, min_open=True), help="Softmax temperature of the soft targets.")
@click.option("--soft-weight", default=_default("soft_weight"), show_default=True, type=click.FloatRange(min=0),
              help="Weight of T^2 * KL to the teacher.")
@click.option("--hard-weight", default=_default("hard_weight"), show_default=True, type=click.FloatRange(min=0),
              help="Weight of the labels' loss.")
@click.option("--hidden-weight", default=_default("hidden_weight"), show_default=True, type=click.FloatRange(min=0),
              help="Weight of the hidden-state MSE (TinyBERT; 0: off).")
@click.option("--attention-weight", default=_default("attention_weight"), show_default=True,
              type=click.FloatRange(min=0), help="Weight of the attention KL (MiniLM/TinyBERT; 0: off).")
@click.option("--layer-map", metavar="I,J,...",
              help="Teacher layer of each student layer for the hidden/attention losses (default: uniform).")
@click.option("--epochs", default=_default("epochs"), show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=_default("batch_size"), show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=_default("lr"), show_default=True, type=float,
              help="Peak learning rate (AdamW); a random-weight preset student wants more (~5e-4).")
@click.option("--warmup", default=_default("warmup"), show_default=True, type=float,
              help="Warm-up: fraction of all steps, or a step count.")
@click.option("--weight-decay", default=_default("weight_decay"), show_default=True, type=float)
@click.option("--dropout", default=_default("dropout"), show_default=True, type=float, help="Dropout of a new head.")
@click.option("--seed", default=_default("seed"), show_default=True, type=int)
@click.option("--seq-len", type=int, help="Tokens per example (default: the teacher's).")
@click.option("--early-stopping", type=click.IntRange(min=1), metavar="EPOCHS",
              help="Stop after this many epochs without a better eval metric.")
@click.option("--xla", is_flag=True, help="Compile the train step with XLA.")
@click.option("--text-column", help="classify: text column.")
@click.option("--pair-column", help="classify: second-text column.")
@click.option("--label-column", help="classify: label column.")
@click.option("--format", "format", type=click.Choice(["tsv", "csv", "jsonl"]), help="classify: file format.")
@click.option("--header/--no-header", "header", default=None, help="classify: CSV/TSV header row (default: yes).")
@click.option("--tag-column", type=int, help="ner: tag column of the CoNLL files (default: the last).")
@click.option("--word-column", type=int, help="ner: word column (default: the first).")
@click.option("--articles", help="qa: START:STOP slice of the training file's articles.")
@click.option("--eval-articles", help="qa: START:STOP slice of the eval file's articles.")
def distill(teacher, student, student_layers, train, unlabeled, eval_, out, **options):
    """Distill a fine-tuned teacher into a smaller student model directory.

    The student learns the teacher's soft targets (KL at --temperature) and the
    labels of --train, plus the teacher's labels of any --unlabeled text; the
    result is an ordinary model directory (evaluate, predict, export).

    \b
    Examples:
    kbert distill --teacher runs/sst2 --student-layers 3 --train sst2/train.tsv \\
        --unlabeled more.txt --eval sst2/dev.tsv --out runs/sst2_l3
    kbert distill --teacher runs/sst2 --student mini --lr 5e-4 \\
        --train sst2/train.tsv --eval sst2/dev.tsv --out runs/sst2_mini
    """
    given = {k: v for k, v in options.items() if v is not None}
    start_tensorflow()
    result = run_distill(teacher, train, out, student, unlabeled=list(unlabeled), eval=eval_,
                         student_layers=student_layers, **given)
    metrics = result["metrics"]
    shown = {k: metrics[k] for k in ("eval", "kl_before", "kl", "mse_to_teacher_before", "mse_to_teacher",
                                     "teacher_kept", "best_epoch", "train_wall_time_s") if k in metrics}
    if "eval" in metrics["teacher"]:
        shown["teacher_eval"] = metrics["teacher"]["eval"]
    click.echo(json.dumps(shown, indent=2))
    click.echo(f"wrote {result['model_dir'].path}")


COMMANDS = [distill]
