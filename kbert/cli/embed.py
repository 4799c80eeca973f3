"""`kbert embed` and `kbert search`: thin layers over `kbert.vectors`."""

import json

import click

from kbert.cli.options import api_default
from kbert.runtime import start_tensorflow
from kbert.vectors import VectorIndex, embed_file


@click.command("embed")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--input", "input_", required=True, type=click.Path(dir_okay=False),
              help="UTF-8 text file: one text a line; every line (blank ones too) gets a vector.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="NumPy .npy file to write: float32 [lines, dim], row i for line i + 1.")
@click.option("--batch-size", default=api_default(embed_file, "batch_size"), show_default=True,
              type=click.IntRange(min=1))
@click.option("--seq-len", type=int, help="Tokens per text (default: the model directory's).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out that kbert did not write.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def embed(model_dir, input_, out, batch_size, seq_len, overwrite, quiet):
    """Embed every line of a text file with an embed model directory.

    Example: kbert embed runs/minilm --input sentences.txt --out vectors.npy
    """
    start_tensorflow()
    result = embed_file(model_dir, input_, out, batch_size=batch_size, seq_len=seq_len, progress=not quiet,
                        overwrite=overwrite)
    click.echo(f"wrote {result['vectors']} vectors of dimension {result['dim']} to {result['out']}")


@click.command("search")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--corpus", type=click.Path(dir_okay=False),
              help="UTF-8 text file: one document a line (blank lines skipped), embedded now.")
@click.option("--index", "index_dir", type=click.Path(file_okay=False),
              help="A saved index (--index-out of an earlier search) instead of --corpus.")
@click.option("--query", "queries", multiple=True, required=True, metavar="TEXT", help="A query; repeatable.")
@click.option("-k", "--top-k", "k", default=api_default(VectorIndex.search, "k"), show_default=True,
              type=click.IntRange(min=1), help="Documents per query.")
@click.option("--index-out", type=click.Path(file_okay=False),
              help="Also save the index built from --corpus here (vectors.npy, corpus.txt, lines.npy, index.json).")
@click.option("--batch-size", default=api_default(VectorIndex.build, "batch_size"), show_default=True,
              type=click.IntRange(min=1))
@click.option("--seq-len", type=int, help="Tokens per text (default: the model directory's).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --index-out that kbert did not write.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def search(model_dir, corpus, index_dir, queries, k, index_out, batch_size, seq_len, overwrite, quiet):
    """Nearest documents of each query by exact cosine; one JSON object per query.

    Exact search with NumPy suits up to about 10^5-10^6 documents; beyond that,
    move the saved vectors to an approximate index such as FAISS.
    Example: kbert search runs/minilm --corpus faq.txt --query "how do I reset my password?" -k 5
    """
    if (corpus is None) == (index_dir is None):
        raise click.UsageError("give --corpus FILE or --index DIR (one of them)")
    if index_out and not corpus:
        raise click.UsageError("--index-out saves an index built from --corpus")
    start_tensorflow()
    if corpus:
        index = VectorIndex.build(model_dir, corpus, batch_size=batch_size, seq_len=seq_len, progress=not quiet)
        if index_out:
            index.save(index_out, overwrite=overwrite, inputs=[model_dir, corpus])
    else:
        index = VectorIndex.load(index_dir)
    for query, hits in zip(queries, index.search(model_dir, list(queries), k=k, batch_size=batch_size)):
        click.echo(json.dumps({"query": query, "results": hits}, ensure_ascii=False))


COMMANDS = [embed, search]
