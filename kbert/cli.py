"""The `kbert` command line: a thin click layer over the Python API.

Bad input raises `kbert.KbertError`; the group turns it into one line on stderr and
exit code 2, with no traceback.
"""

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


if __name__ == "__main__":
    main()
