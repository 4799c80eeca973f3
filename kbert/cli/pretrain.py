"""`kbert pretrain-data` and `kbert pretrain`: thin layers over
`kbert.data.write_tfrecords` and `kbert.pretrain` (defaults read from them)."""

import json

import click

from kbert.cli.options import LazyDefault, api_default
from kbert.config import PRESETS
from kbert.runtime import start_tensorflow
from kbert.training.pretrain import pretrain as run_pretrain

# kbert.data.pretraining imports TensorFlow: its defaults are read when needed.
_DATA_CONFIG = "kbert.data:PretrainingConfig"
_WRITE = "kbert.data:write_tfrecords"


def _data_config_options(f):
    options = [
        click.option("--seq-len", default=LazyDefault(_DATA_CONFIG, "seq_len"), show_default=True, type=int,
                     help="Length of every example (pre-training: at most the model's max_position_embeddings)."),
        click.option("--max-predictions", default=LazyDefault(_DATA_CONFIG, "max_predictions_per_seq"),
                     show_default=True, type=click.IntRange(min=1), help="Masked positions per sequence at most."),
        click.option("--masked-lm-prob", default=LazyDefault(_DATA_CONFIG, "masked_lm_prob"), show_default=True,
                     type=float),
        click.option("--short-seq-prob", default=LazyDefault(_DATA_CONFIG, "short_seq_prob"), show_default=True,
                     type=float),
        click.option("--whole-word-mask", is_flag=True, help="Mask all pieces of a word together."),
        click.option("--seed", default=LazyDefault(_DATA_CONFIG, "seed"), show_default=True, type=int),
        click.option("--split-sentences", is_flag=True,
                     help="Input is plain paragraphs; split them into sentences."),
        click.option("--cased", is_flag=True, help="Keep case (default: lowercase + strip accents)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _data_config(seq_len, max_predictions, masked_lm_prob, short_seq_prob, whole_word_mask, seed, **extra):
    from kbert.data import PretrainingConfig

    return PretrainingConfig(
        seq_len=seq_len, max_predictions_per_seq=max_predictions, masked_lm_prob=masked_lm_prob,
        short_seq_prob=short_seq_prob, whole_word_mask=whole_word_mask, seed=seed, **extra,
    )


@click.command("pretrain-data")
@click.option("--corpus", multiple=True, required=True, metavar="GLOB", help="Text files or globs (repeatable).")
@click.option("--vocab", required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory of TFRecord shards.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing --out that is not kbert pre-training data (its files are lost).")
@click.option("--dupe-factor", default=LazyDefault(_DATA_CONFIG, "dupe_factor"), show_default=True,
              type=click.IntRange(min=1),
              help="Passes over the corpus, each with new pairs and masks.")
@click.option("--shards", default=LazyDefault(_WRITE, "num_shards"), show_default=True,
              type=click.IntRange(min=1))
@click.option("--holdout", default=LazyDefault(_WRITE, "holdout"), show_default=True, type=float,
              help="Fraction of documents held out for evaluation.")
@click.option("--split", type=click.Choice(["train", "heldout"]), default=LazyDefault(_WRITE, "split"),
              show_default=True, help="Write the training documents or the held-out ones.")
@_data_config_options
def pretrain_data(corpus, vocab, out, overwrite, dupe_factor, shards, holdout, split, split_sentences, cased,
                  **options):
    """Write masked MLM+NSP examples to sharded TFRecords (streaming, flat memory).

    Example: kbert pretrain-data --corpus 'corpus/*.txt' --vocab vocab.txt --out data/train
    """
    start_tensorflow()
    from kbert.data import write_tfrecords
    from kbert.tokenization import BertTokenizer

    config = _data_config(dupe_factor=dupe_factor, **options)
    info = write_tfrecords(
        list(corpus), BertTokenizer(vocab, lowercase=not cased), out, config, num_shards=shards,
        split_sentences=split_sentences, holdout=holdout, split=split, overwrite=overwrite,
    )
    click.echo(f"wrote {out}: {json.dumps(info.get('counts', info)) if isinstance(info, dict) else info}")


def _default(name):
    return api_default(run_pretrain, name)


@click.command()
@click.option("--corpus", multiple=True, metavar="GLOB",
              help="Text files or globs: examples built and masked on the fly (fresh masks each epoch).")
@click.option("--data", type=click.Path(file_okay=False), help="Or a `kbert pretrain-data` directory.")
@click.option("--eval-data", type=click.Path(file_okay=False), help="Held-out `pretrain-data` directory.")
@click.option("--vocab", required=True, type=click.Path(dir_okay=False))
@click.option("--preset", default=_default("config"), show_default=True, type=click.Choice(list(PRESETS)))
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="BertConfig JSON (kbert, Google or HF) instead of --preset.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing --out that is not a kbert model directory (its files are lost).")
@click.option("--batch-size", default=_default("batch_size"), show_default=True, type=click.IntRange(min=1))
@click.option("--steps", default=_default("steps"), show_default=True, type=click.IntRange(min=1),
              help="Training steps (rounded up to a multiple of --checkpoint-every).")
@click.option("--lr", default=_default("learning_rate"), show_default=True, type=float, help="Peak learning rate.")
@click.option("--warmup", default=_default("warmup"), show_default=True, type=float,
              help="Fraction of steps, or a step count.")
@click.option("--weight-decay", default=_default("weight_decay"), show_default=True, type=float)
@click.option("--optimizer", default=_default("optimizer"), show_default=True, type=click.Choice(["adamw", "lamb"]))
@click.option("--clipnorm", default=_default("clipnorm"), show_default=True, type=float)
@click.option("--accumulate", default=_default("accumulation_steps"), show_default=True, type=click.IntRange(min=1),
              help="Gradient accumulation: batches per optimizer update.")
@click.option("--precision", default=_default("precision"), show_default=True,
              type=click.Choice(["fp32", "mixed_float16", "mixed_bfloat16"]))
@click.option("--xla", is_flag=True, help="Compile the train step with XLA.")
@click.option("--checkpoint-every", default=_default("checkpoint_every"), show_default=True,
              type=click.IntRange(min=1),
              help="Steps between checkpoints; re-running the command resumes from the last one.")
@click.option("--holdout", default=_default("holdout"), show_default=True, type=float,
              help="Fraction of --corpus documents held out for evaluation.")
@click.option("--eval-batches", default=_default("eval_batches"), show_default=True, type=click.IntRange(min=1))
@click.option("--no-nsp", is_flag=True, help="Masked LM only (no next-sentence prediction).")
@_data_config_options
def pretrain(corpus, data, eval_data, vocab, preset, config_path, out, overwrite, batch_size, steps, lr, warmup,
             weight_decay, optimizer, clipnorm, accumulate, precision, xla, checkpoint_every, holdout, eval_batches,
             no_nsp, split_sentences, cased, **options):
    """Pre-train a BERT with masked LM + next-sentence prediction.

    Writes a model directory (config.json, vocab.txt, model.keras, metrics.json with
    held-out mlm_accuracy / nsp_accuracy, training_curve.png, logs/) usable by
    fine-tuning. Checkpoints go to OUT.work/; interrupting and re-running the same
    command resumes.
    Example: kbert pretrain --corpus 'corpus/*.txt' --vocab vocab.txt --preset mini --steps 20000 --out runs/mini
    """
    start_tensorflow()
    result = run_pretrain(
        out, vocab=vocab, corpus=list(corpus) or None, data=data, eval_data=eval_data,
        config=config_path or preset, data_config=_data_config(**options), lowercase=not cased,
        batch_size=batch_size, steps=steps, learning_rate=lr, warmup=warmup, weight_decay=weight_decay,
        optimizer=optimizer, clipnorm=clipnorm, accumulation_steps=accumulate, precision=precision, xla=xla,
        checkpoint_every=checkpoint_every, eval_batches=eval_batches, holdout=holdout,
        split_sentences=split_sentences, next_sentence=not no_nsp, overwrite=overwrite,
    )
    click.echo(json.dumps(result["metrics"], indent=2))


COMMANDS = [pretrain_data, pretrain]
