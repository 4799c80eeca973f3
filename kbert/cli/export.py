"""`kbert export` and `kbert serve-request`: thin layers over `kbert.export`
and `kbert.serving.client` (defaults read from them)."""

import json
import os

import click

from kbert.cli.options import api_default
from kbert.export import FORMATS, export
from kbert.export.tflite import MODES
from kbert.runtime import start_tensorflow
from kbert.serving.client import DEFAULT_URL, FORMS, post, predict_request


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
@click.option("--quantize", default=",".join(api_default(export, "quantize")), show_default=True, callback=_list(MODES, "--quantize"),
              help="TFLite modes: float32, float16, dynamic, int8 (integer-only), int16x8 (integer-only, int16 "
                   "activations) (comma-separated) or all; dynamic also writes onnx/model_dynamic.onnx (int8 "
                   "weights).")
@click.option("--seq-len", type=int, help="Fixed TFLite length (default: the model dir's seq_len).")
@click.option("--eval", "eval_", type=click.Path(dir_okay=False),
              help="Labelled file the artifacts are verified on (default: the model dir's eval file).")
@click.option("--eval-size", default=api_default(export, "eval_size"), show_default=True, type=click.IntRange(min=1))
@click.option("--calibration", type=click.Path(dir_okay=False),
              help="Training-data file for int8/int16x8 calibration (default: the model dir's train file).")
@click.option("--calibration-size", default=api_default(export, "calibration_size"), show_default=True,
              type=click.IntRange(min=1))
@click.option("--version", type=click.IntRange(min=1), help="SavedModel version (default: the next free one).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Export directory, e.g. exports/sst2.")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing --out that is not a kbert export (its files are lost).")
def export_(model_dir, formats, quantize, seq_len, eval_, eval_size, calibration, calibration_size, version, out,
            overwrite):
    """Export MODEL_DIR to SavedModel (TF Serving), TFLite and ONNX, and verify
    each artifact against the Keras model (report.json / report.md in OUT).

    Nothing is written when an artifact fails its check (exit code 2).
    """
    start_tensorflow()
    from kbert.export.run import report_markdown

    report = export(model_dir, out, formats=formats, quantize=quantize, seq_len=seq_len, eval=eval_,
                    eval_size=eval_size, calibration=calibration, calibration_size=calibration_size,
                    version=version, progress=lambda m: click.echo(m, err=True), overwrite=overwrite)
    click.echo(report_markdown(report))
    click.echo(f"wrote {out}")


@click.command("serve-request")
@click.option("--text", "texts", multiple=True, metavar="TEXT",
              help="A text to send; repeat for a batch. The question for QA.")
@click.option("--text-pair", "pairs", multiple=True, metavar="TEXT",
              help="The second text of each --text (pair classifiers; the context for QA).")
@click.option("--file", "file_", type=click.Path(dir_okay=False),
              help="UTF-8 file of texts, one a line; 'text<TAB>text_pair' lines for pairs. Blank lines are skipped.")
@click.option("--form", type=click.Choice(FORMS), default=api_default(predict_request, "form"), show_default=True,
              help="instances: one object per text (row format); inputs: one list per input (columnar).")
@click.option("--signature", type=click.Choice(["serving_default", "ids"]),
              default=api_default(predict_request, "signature"), show_default=True,
              help="ids: tokenize here with --export's vocab.txt and send token ids.")
@click.option("--export", "export_dir", type=click.Path(file_okay=False),
              help="Export directory (exports/NAME): the default --model, and the vocab for --signature ids.")
@click.option("--model", help="Model name on the server (default: --export's folder name, else 'model').")
@click.option("--model-version", type=click.IntRange(min=1), help="Ask for this version (default: the latest).")
@click.option("--url", help=f"Model server, e.g. {DEFAULT_URL}: POST the request and print the answer.")
@click.option("--curl", is_flag=True, help=f"Print a curl command line (to --url, else {DEFAULT_URL}).")
@click.option("--local", type=click.Path(file_okay=False),
              help="Answer in-process with this SavedModel (exports/NAME or a version folder), formatted as "
                   "TF Serving would: no server needed.")
@click.option("--timeout", default=api_default(post, "timeout"), show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Seconds to wait for --url.")
def serve_request(texts, pairs, file_, form, signature, export_dir, model, model_version, url, curl, local, timeout):
    """Build a TF Serving REST predict request from text.

    Prints the JSON body; with --curl the curl command that sends it; with
    --url the server's answer; with --local the answer of a local SavedModel.

    Example: kbert serve-request --text "a gripping film" --export exports/sst2 --curl
    """
    from kbert.serving.client import (body_json, curl_command, export_ids_request, predict_locally, predict_url,
                                      read_texts)

    if sum(map(bool, (url and not curl, curl, local))) > 1:
        raise click.UsageError("give at most one of --url, --curl, --local (--curl may name its --url)")
    if file_ and (texts or pairs):
        raise click.UsageError("give texts with --text/--text-pair or with --file, not both")
    if not file_ and not texts:
        raise click.UsageError("no text: pass --text TEXT (repeatable) or --file FILE")
    if pairs and len(pairs) != len(texts):
        raise click.UsageError(f"{len(texts)} --text but {len(pairs)} --text-pair: give one pair per text")
    if signature == "ids" and not export_dir:
        raise click.UsageError("--signature ids tokenizes with the export's vocab: pass --export DIR")
    texts, pairs = read_texts(file_) if file_ else (list(texts), list(pairs) or None)
    if signature == "ids":
        start_tensorflow()
        body = export_ids_request(export_dir, texts, pairs, form)
    else:
        body = predict_request(texts, pairs, signature=signature, form=form)
    model = model or (os.path.basename(os.path.normpath(export_dir)) if export_dir else "model")
    if local:
        start_tensorflow()
        click.echo(predict_locally(local, body))
    elif curl:
        click.echo(curl_command(predict_url(url or DEFAULT_URL, model, model_version), body))
    elif url:
        answer = post(predict_url(url, model, model_version), body, timeout=timeout)
        click.echo(json.dumps(answer, indent=2, ensure_ascii=False))
    else:
        click.echo(body_json(body))


COMMANDS = [export_, serve_request]
