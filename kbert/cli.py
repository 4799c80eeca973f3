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
    from kbert.tokenization import learn_vocab

    tokens = learn_vocab(list(corpus), size, lowercase=lowercase, out=out)
    note = ""
    if len(tokens) < size:
        note = (f" (fewer than --size {size}: beyond single characters the learner keeps "
                "only pieces seen at least 10 times; a larger corpus gives more)")
    click.echo(f"wrote {len(tokens)} tokens to {out}{note}")


if __name__ == "__main__":
    main()
