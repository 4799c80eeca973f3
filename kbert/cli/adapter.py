"""`kbert apply-adapter`: a click wrapper over `kbert.apply_adapter`."""

import click

from kbert.runtime import start_tensorflow


@click.command("apply-adapter")
@click.argument("base", type=click.Path(file_okay=False))
@click.argument("adapter", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing --out that is not a kbert model directory (its files are lost).")
def apply_adapter(base, adapter, out, overwrite):
    """Merge a LoRA adapter into its base model directory and write the model dir.

    BASE is the --init the adapter was fine-tuned from (checked by a hash of its
    weights); ADAPTER is the --out of `kbert finetune ... --lora-rank R --save-adapter`
    (or its adapter.safetensors).
    Example: kbert apply-adapter runs/minilm runs/sst2_lora --out runs/sst2
    """
    from kbert.training.lora import apply_adapter as run_apply

    start_tensorflow()
    click.echo(f"wrote {run_apply(base, adapter, out, overwrite=overwrite).path}")


COMMANDS = [apply_adapter]
