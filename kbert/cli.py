"""The `kbert` command line: a thin click layer over the Python API.

Bad input raises `kbert.KbertError`; the group turns it into one line on stderr and
exit code 2, with no traceback.
"""

import json
import os
import sys

import click

from kbert.version import __version__

# TensorFlow logs a page of C++ notices at import; users asked for kbert's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _start_tensorflow():
    """Import TensorFlow and initialise its devices with the C++ start-up notices
    (printed to fd 2 before logging is configured, whatever TF_CPP_MIN_LOG_LEVEL
    says, e.g. "failed call to cuInit" on machines without a GPU) sent to
    /dev/null, so an error stays the one line the user sees. Python errors raise."""
    if "tensorflow" in sys.modules:
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.config.list_logical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _Group(click.Group):
    def invoke(self, ctx):
        from kbert.errors import KbertError

        try:
            return super().invoke(ctx)
        except KbertError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kbert")
def main():
    """kbert: BERT in TensorFlow/Keras 3, from raw text to TF Serving and a phone."""


@main.command()
@click.option(
    "--corpus", "corpus", multiple=True, required=True, metavar="FILE",
    help="UTF-8 text file(s) to learn from; repeat the option for several.",
)
@click.option("--size", default=30522, show_default=True, type=click.IntRange(min=6),
              help="Vocabulary size, special tokens included.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="vocab.txt to write.")
@click.option("--lowercase/--cased", default=True, show_default=True,
              help="Lowercase and strip accents (BERT uncased) or keep case.")
def vocab(corpus, size, out, lowercase):
    """Learn a WordPiece vocabulary from text files.

    [PAD] [UNK] [CLS] [SEP] [MASK] come first; the file is written only when
    complete. Example: kbert vocab --corpus a.txt --corpus b.txt --size 8000 --out vocab.txt
    """
    _start_tensorflow()
    from kbert.tokenization import learn_vocab

    tokens = learn_vocab(list(corpus), size, lowercase=lowercase, out=out)
    note = ""
    if len(tokens) < size:
        note = (f" (fewer than --size {size}: beyond single characters the learner keeps "
                "only pieces seen at least 10 times; a larger corpus gives more)")
    click.echo(f"wrote {len(tokens)} tokens to {out}{note}")


@main.command("import")
@click.option("--from", "fmt", type=click.Choice(["hf", "google"]), required=True,
              help="Checkpoint format: Hugging Face directory (or hub id) or Google's BERT release.")
@click.argument("source")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option("--seq-len", default=128, show_default=True, type=click.IntRange(min=2),
              help="Sequence length recorded for fine-tuning and export.")
@click.option("--architecture", default=None,
              help="HF only: override config.json's architectures[0] (e.g. BertModel).")
def import_(fmt, source, out, seq_len, architecture):
    """Import a pre-trained BERT checkpoint as a kbert model directory.

    SOURCE is a directory: Google's (bert_config.json, vocab.txt, bert_model.ckpt.*)
    or Hugging Face's (config.json, model.safetensors or pytorch_model.bin,
    vocab.txt). Example: kbert import --from hf ./all-MiniLM-L6-v2 --out runs/minilm
    """
    _start_tensorflow()
    from kbert.checkpoints import import_checkpoint

    info = import_checkpoint(source, out, fmt, seq_len=seq_len, architecture=architecture)
    click.echo(f"imported {info.task} model ({info.config.num_layers} layers, hidden "
               f"{info.config.hidden_size}, vocab {info.config.vocab_size}) to {info.path}")


@main.command("export-hf")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Directory to write (config.json, model.safetensors, vocab.txt).")
def export_hf_(model_dir, out):
    """Write a kbert model directory as a Hugging Face BERT directory.

    `transformers` loads the result with the matching BertFor* class.
    """
    _start_tensorflow()
    from kbert.checkpoints import export_hf
    from kbert.model_dir import load_model, read_model_dir

    info = read_model_dir(model_dir)
    export_hf(load_model(model_dir), out, vocab=info.vocab, lowercase=info.lowercase,
              labels=info.labels)
    click.echo(f"wrote Hugging Face {info.task} model to {out}")


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


@main.command("pretrain-data")
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
    _start_tensorflow()
    from kbert.data import write_tfrecords
    from kbert.tokenization import BertTokenizer

    config = _data_config(dupe_factor=dupe_factor, **options)
    info = write_tfrecords(
        list(corpus), BertTokenizer(vocab, lowercase=not cased), out, config, num_shards=shards,
        split_sentences=split_sentences, holdout=holdout, split=split,
    )
    click.echo(f"wrote {out}: {json.dumps(info.get('counts', info)) if isinstance(info, dict) else info}")


@main.command()
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
    _start_tensorflow()
    from kbert.pretrain import pretrain as run_pretrain

    result = run_pretrain(
        out, vocab=vocab, corpus=list(corpus) or None, data=data, eval_data=eval_data,
        config=config_path or preset, data_config=_data_config(**options), lowercase=not cased,
        batch_size=batch_size, steps=steps, learning_rate=lr, warmup=warmup, weight_decay=weight_decay,
        optimizer=optimizer, clipnorm=clipnorm, accumulation_steps=accumulate, precision=precision, xla=xla,
        checkpoint_every=checkpoint_every, eval_batches=eval_batches, holdout=holdout,
        split_sentences=split_sentences, next_sentence=not no_nsp,
    )
    click.echo(json.dumps(result["metrics"], indent=2))


def _register():
    from kbert.cli_datasets import COMMANDS as DATASETS
    from kbert.cli_demo import COMMANDS as DEMO
    from kbert.cli_export import COMMANDS as EXPORT
    from kbert.cli_finetune import COMMANDS
    from kbert.cli_quickstart import COMMANDS as QUICKSTART

    for command in [*COMMANDS, *EXPORT, *DEMO, *DATASETS, *QUICKSTART]:
        main.add_command(command)


_register()

if __name__ == "__main__":
    main()
