"""`kbert vocab`: a thin layer over `kbert.learn_vocab`."""

import click

from kbert.runtime import start_tensorflow


@click.command()
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
    start_tensorflow()
    from kbert.tokenization import learn_vocab

    tokens = learn_vocab(list(corpus), size, lowercase=lowercase, out=out)
    note = ""
    if len(tokens) < size:
        note = (f" (fewer than --size {size}: beyond single characters the learner keeps "
                "only pieces seen at least 10 times; a larger corpus gives more)")
    click.echo(f"wrote {len(tokens)} tokens to {out}{note}")


COMMANDS = [vocab]
