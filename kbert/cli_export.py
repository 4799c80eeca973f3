"""`kbert export`: a thin layer over `kbert.export.export`."""

import click

from kbert.export import FORMATS
from kbert.export.tflite import MODES


def _list(allowed, name):
    def parse(ctx, param, value):
        items = [v.strip() for v in value.split(",") if v.strip()]
        if items == ["all"]:
            return list(allowed)
        bad = [v for v in items if v not in allowed]
        if bad or not items:
            raise click.BadParameter(f"expected a comma-separated list of {', '.join(allowed)} or 'all'",
                                     param_hint=name)
        return items
    return parse


@click.command("export")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--format", "formats", default="all", show_default=True, callback=_list(FORMATS, "--format"),
              help="savedmodel, tflite, onnx (comma-separated) or all.")
@click.option("--quantize", default="all", show_default=True, callback=_list(MODES, "--quantize"),
              help="TFLite modes: float32, float16, dynamic, int8 (comma-separated) or all.")
@click.option("--seq-len", type=int, help="Fixed TFLite length (default: the model dir's seq_len).")
@click.option("--eval", "eval_", type=click.Path(dir_okay=False),
              help="Labelled file the artifacts are verified on (default: the model dir's eval file).")
@click.option("--eval-size", default=500, show_default=True, type=click.IntRange(min=1))
@click.option("--calibration", type=click.Path(dir_okay=False),
              help="Training-data file for full-int8 calibration (default: the model dir's train file).")
@click.option("--calibration-size", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--version", type=click.IntRange(min=1), help="SavedModel version (default: the next free one).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Export directory, e.g. exports/sst2.")
def export_(model_dir, formats, quantize, seq_len, eval_, eval_size, calibration, calibration_size, version, out):
    """Export MODEL_DIR to SavedModel (TF Serving), TFLite and ONNX, and verify
    each artifact against the Keras model (report.json / report.md in OUT).

    Nothing is written when an artifact fails its check (exit code 2).
    """
    from kbert.cli import _start_tensorflow

    _start_tensorflow()
    from kbert.export import export
    from kbert.export.run import report_markdown

    report = export(model_dir, out, formats=formats, quantize=quantize, seq_len=seq_len, eval=eval_,
                    eval_size=eval_size, calibration=calibration, calibration_size=calibration_size,
                    version=version, progress=lambda m: click.echo(m, err=True))
    click.echo(report_markdown(report))
    click.echo(f"wrote {out}")


COMMANDS = [export_]
