"""`kbert import` and `kbert export-hf`: thin layers over `kbert.checkpoints`."""

import click

from kbert.runtime import start_tensorflow


@click.command("import")
@click.option("--from", "fmt", type=click.Choice(["hf", "google"]), required=True,
              help="Checkpoint format: Hugging Face directory (or hub id) or Google's BERT release.")
@click.argument("source")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing --out that kbert did not write as this kind of output (its files are lost).")
@click.option("--seq-len", type=int,
              help="Sequence length recorded for fine-tuning and export (default: 128, or the model's "
                   "max_position_embeddings if shorter).")
@click.option("--architecture", default=None,
              help="HF only: override config.json's architectures[0] (e.g. BertModel).")
def import_(fmt, source, out, seq_len, architecture, overwrite):
    """Import a pre-trained BERT checkpoint as a kbert model directory.

    SOURCE is a directory: Google's (bert_config.json, vocab.txt, bert_model.ckpt.*)
    or Hugging Face's (config.json, model.safetensors or pytorch_model.bin,
    vocab.txt); a sentence-transformers directory (modules.json) becomes an
    embed model with its pooling. Example: kbert import --from hf ./all-MiniLM-L6-v2 --out runs/minilm
    """
    start_tensorflow()
    from kbert.checkpoints import import_checkpoint

    info = import_checkpoint(source, out, fmt, seq_len=seq_len, architecture=architecture, overwrite=overwrite)
    click.echo(f"imported {info.task} model ({info.config.num_layers} layers, hidden "
               f"{info.config.hidden_size}, vocab {info.config.vocab_size}) to {info.path}")


@click.command("export-hf")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Directory to write (config.json, model.safetensors, vocab.txt).")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing --out that kbert did not write as this kind of output (its files are lost).")
def export_hf_(model_dir, out, overwrite):
    """Write a kbert model directory as a Hugging Face BERT directory.

    `transformers` loads the result with the matching BertFor* class; an
    embed model is written as a sentence-transformers model.
    """
    start_tensorflow()
    from kbert.checkpoints import export_hf
    from kbert.model_dir import load_model, read_model_dir

    info = read_model_dir(model_dir)
    export_hf(load_model(model_dir), out, vocab=info.vocab, lowercase=info.lowercase,
              labels=info.labels, overwrite=overwrite, inputs=[model_dir], seq_len=info.seq_len)
    click.echo(f"wrote Hugging Face {info.task} model to {out}")


COMMANDS = [import_, export_hf_]
