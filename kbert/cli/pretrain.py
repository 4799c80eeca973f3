"""`kbert pretrain-data` and `kbert pretrain`: thin layers over `kbert.data` and
`kbert.pretrain`."""

import json

import click

from kbert.runtime import start_tensorflow


def _data_config_options(f):
    options = [
        click.option("--seq-len", default=128, show_default=True, type=click.IntRange(min=8)),
        click.option("--max-predictions", default=20, show_default=True, type=click.IntRange(min=1),
                     help="Masked positions per sequence at most."),
        click.option("--masked-lm-prob", default=0.15, show_default=True, type=float),
        click.option("--short-seq-prob", default=0.1, show_default=True, type=float),
        click.option("--whole-word-mask", is_flag=True, help="Mask all pieces of a word together."),
        click.option("--seed", default=12345, show_default=True, type=int),
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
@click.option("--dupe-factor", default=1, show_default=True, type=click.IntRange(min=1),
              help="Passes over the corpus, each with new pairs and masks.")
@click.option("--shards", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--holdout", default=0.0, show_default=True, type=float,
              help="Fraction of documents held out for evaluation.")
@click.option("--split", type=click.Choice(["train", "heldout"]), default="train", show_default=True,
              help="Write the training documents or the held-out ones.")
@_data_config_options
def pretrain_data(corpus, vocab, out, dupe_factor, shards, holdout, split, split_sentences, cased, **options):
    """Write masked MLM+NSP examples to sharded TFRecords (streaming, flat memory).

    Example: kbert pretrain-data --corpus 'corpus/*.txt' --vocab vocab.txt --out data/train
    """
    start_tensorflow()
    from kbert.data import write_tfrecords
    from kbert.tokenization import BertTokenizer

    config = _data_config(dupe_factor=dupe_factor, **options)
    info = write_tfrecords(
        list(corpus), BertTokenizer(vocab, lowercase=not cased), out, config, num_shards=shards,
        split_sentences=split_sentences, holdout=holdout, split=split,
    )
    click.echo(f"wrote {out}: {json.dumps(info.get('counts', info)) if isinstance(info, dict) else info}")


@click.command()
@click.option("--corpus", multiple=True, metavar="GLOB",
              help="Text files or globs: examples built and masked on the fly (fresh masks each epoch).")
@click.option("--data", type=click.Path(file_okay=False), help="Or a `kbert pretrain-data` directory.")
@click.option("--eval-data", type=click.Path(file_okay=False), help="Held-out `pretrain-data` directory.")
@click.option("--vocab", required=True, type=click.Path(dir_okay=False))
@click.option("--preset", default="tiny", show_default=True,
              type=click.Choice(["tiny", "mini", "small", "medium", "base", "large"]))
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="BertConfig JSON (kbert, Google or HF) instead of --preset.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--steps", default=10000, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", default=1e-4, show_default=True, type=float, help="Peak learning rate.")
@click.option("--warmup", default=0.1, show_default=True, type=float, help="Fraction of steps, or a step count.")
@click.option("--weight-decay", default=0.01, show_default=True, type=float)
@click.option("--optimizer", default="adamw", show_default=True, type=click.Choice(["adamw", "lamb"]))
@click.option("--clipnorm", default=1.0, show_default=True, type=float)
@click.option("--accumulate", default=1, show_default=True, type=click.IntRange(min=1),
              help="Gradient accumulation: batches per optimizer update.")
@click.option("--precision", default="fp32", show_default=True,
              type=click.Choice(["fp32", "mixed_float16", "mixed_bfloat16"]))
@click.option("--xla", is_flag=True, help="Compile the train step with XLA.")
@click.option("--checkpoint-every", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Steps between checkpoints; re-running the command resumes from the last one.")
@click.option("--holdout", default=0.02, show_default=True, type=float,
              help="Fraction of --corpus documents held out for evaluation.")
@click.option("--eval-batches", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--no-nsp", is_flag=True, help="Masked LM only (no next-sentence prediction).")
@_data_config_options
def pretrain(corpus, data, eval_data, vocab, preset, config_path, out, batch_size, steps, lr, warmup, weight_decay,
             optimizer, clipnorm, accumulate, precision, xla, checkpoint_every, holdout, eval_batches, no_nsp,
             split_sentences, cased, **options):
    """Pre-train a BERT with masked LM + next-sentence prediction.

    Writes a model directory (config.json, vocab.txt, model.keras, metrics.json with
    held-out mlm_accuracy / nsp_accuracy) usable by fine-tuning. Checkpoints go to
    OUT.work/; interrupting and re-running the same command resumes.
    Example: kbert pretrain --corpus 'corpus/*.txt' --vocab vocab.txt --preset mini --steps 20000 --out runs/mini
    """
    start_tensorflow()
    from kbert.training.pretrain import pretrain as run_pretrain

    result = run_pretrain(
        out, vocab=vocab, corpus=list(corpus) or None, data=data, eval_data=eval_data,
        config=config_path or preset, data_config=_data_config(**options), lowercase=not cased,
        batch_size=batch_size, steps=steps, learning_rate=lr, warmup=warmup, weight_decay=weight_decay,
        optimizer=optimizer, clipnorm=clipnorm, accumulation_steps=accumulate, precision=precision, xla=xla,
        checkpoint_every=checkpoint_every, eval_batches=eval_batches, holdout=holdout,
        split_sentences=split_sentences, next_sentence=not no_nsp,
    )
    click.echo(json.dumps(result["metrics"], indent=2))


COMMANDS = [pretrain_data, pretrain]
