"""`kbert vocab`: a thin layer over `kbert.learn_vocab`."""

import click

from kbert.cli.options import LazyDefault, api_default
from kbert.config import BertConfig
from kbert.runtime import start_tensorflow


@click.command()
@click.option(
    "--corpus", "corpus", multiple=True, required=True, metavar="FILE",
    help="UTF-8 text file(s) to learn from; repeat the option for several.",
)
@click.option("--size", default=api_default(BertConfig, "vocab_size"), show_default=True, type=click.IntRange(min=6),
              help="Vocabulary size, special tokens included (default: BERT's).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="vocab.txt to write.")
@click.option("--lowercase/--cased", default=LazyDefault("kbert.tokenization.learn:learn_vocab", "lowercase"),
              show_default=True,
              help="Lowercase and strip accents (BERT uncased) or keep case.")
@click.option("--min-frequency", type=click.IntRange(min=1), show_default=True,
              default=LazyDefault("kbert.tokenization.learn:learn_vocab", "min_frequency"),
              help="Keep a piece longer than one character only if seen this many times.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing --out that is not a vocabulary kbert learned.")
def vocab(corpus, size, out, lowercase, min_frequency, overwrite):
    """Learn a WordPiece vocabulary from text files.

    [PAD] [UNK] [CLS] [SEP] [MASK] come first; the file is written only when
    complete. Example: kbert vocab --corpus a.txt --corpus b.txt --size 8000 --out vocab.txt
    """
    start_tensorflow()
    from kbert.tokenization import learn_vocab

    tokens = learn_vocab(list(corpus), size, lowercase=lowercase, out=out,
                         min_frequency=min_frequency, overwrite=overwrite)
    note = ""
    if len(tokens) < size:
        note = (f" (fewer than --size {size}: the corpus has no more pieces seen at least "
                f"--min-frequency {min_frequency} times; a larger corpus or a lower "
                "--min-frequency gives more)")
    click.echo(f"wrote {len(tokens)} tokens to {out}{note}")


COMMANDS = [vocab]
