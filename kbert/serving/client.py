"""Requests for TF Serving's REST predict API, and its responses.

The request builders are plain Python and `json` (no TensorFlow), so a client
that only talks to a server needs nothing but kbert's pure-Python modules.

TF Serving's predict API (`POST /v1/models/NAME[/versions/N]:predict`) takes
one of two body forms:

    row ("instances"):   {"signature_name": "serving_default",
                          "instances": [{"text": "a gripping film"}, ...]}
    columnar ("inputs"): {"signature_name": "serving_default",
                          "inputs": {"text": ["a gripping film", ...]}}

and answers `{"predictions": [...]}` (one entry per instance: an object of
the named outputs, or the bare value when the signature has one output) or
`{"outputs": {...}}` (each output as a whole batch) respectively.

`serving_response` writes a local signature's outputs in TF Serving's REST
response structure (`predictions` rows or `outputs` columns, one output's
name dropped, float32 in the fewest digits that round-trip, `NaN` and
`Infinity` unquoted, `*_bytes` string outputs as `{"b64": ...}`), so docs and
tests can show real responses without a model server. The layout is plain
`json.dumps` (TF Serving's clients parse JSON; its whitespace is no contract).
"""

import base64
import json
import operator
import os
import shlex
import urllib.error
import urllib.request

from kbert.errors import ConfigError, DataError, KbertError

FORMS = ("instances", "inputs")
ID_INPUTS = ("token_ids", "segment_ids", "padding_mask")
DEFAULT_URL = "http://localhost:8501"


class ServingError(KbertError):
    """The model server could not be reached or refused the request."""


def predict_request(texts, text_pairs=None, signature="serving_default", form="instances"):
    """The JSON body (a dict) of a predict request on raw strings.

    Args:
        texts: list of strings: the `text` input (the question for QA).
        text_pairs: optional list of strings, one per text: the `text_pair`
            input (the context for QA, the second sentence for pair
            classifiers).
        signature: signature name; kbert's raw-string one is `serving_default`.
        form: "instances" (row format, one object per example) or "inputs"
            (columnar: one list per input name).

    Returns:
        A dict ready for `json.dumps`.

    Examples:

    >>> predict_request(["a gripping film"])
    {'signature_name': 'serving_default', 'instances': [{'text': 'a gripping film'}]}
    >>> predict_request(["Who won?"], ["Ann won the race."], form="inputs")["inputs"]
    {'text': ['Who won?'], 'text_pair': ['Ann won the race.']}
    """
    texts = _strings(texts, "texts")
    columns = {"text": texts}
    if text_pairs is not None:
        columns["text_pair"] = _strings(text_pairs, "text_pairs")
        if len(columns["text_pair"]) != len(texts):
            raise DataError(f"{len(texts)} texts but {len(columns['text_pair'])} text pairs: "
                            "give one text_pair per text")
    return _body(columns, signature, form)


def ids_request(token_ids, segment_ids=None, padding_mask=None, seq_len=None, signature="ids",
                form="instances"):
    """The JSON body of a request to the `ids` signature (pre-tokenized input).

    Args:
        token_ids: rows of int token ids, `[CLS] ... [SEP]` included.
        segment_ids: optional rows like `token_ids` (default: all 0).
        padding_mask: optional rows like `token_ids` (default: 1 for every
            id given, 0 for the padding added up to `seq_len`).
        seq_len: the exported length (`model_card.json`'s `seq_len`): rows are
            padded with 0 to it. Without it every row must already have the
            exported length.
        signature: signature name.
        form: "instances" or "inputs".

    Examples:

    >>> ids_request([[2, 17, 3]], seq_len=5)["instances"]
    [{'token_ids': [2, 17, 3, 0, 0], 'segment_ids': [0, 0, 0, 0, 0], 'padding_mask': [1, 1, 1, 0, 0]}]
    """
    token_ids = _int_rows(token_ids, "token_ids")
    lengths = [len(row) for row in token_ids]
    segment_ids = [[0] * n for n in lengths] if segment_ids is None else _int_rows(segment_ids, "segment_ids")
    padding_mask = [[1] * n for n in lengths] if padding_mask is None else _int_rows(padding_mask, "padding_mask")
    for name, rows in (("segment_ids", segment_ids), ("padding_mask", padding_mask)):
        if [len(row) for row in rows] != lengths:
            raise DataError(f"{name}: rows must have the lengths of token_ids' rows {lengths}")
    width = int(seq_len) if seq_len is not None else max(lengths)
    for i, n in enumerate(lengths):
        if n > width or (seq_len is None and n != width):
            # Truncating here would drop the final [SEP]: the caller packs.
            raise DataError(f"token_ids row {i}: {n} ids, expected {'at most ' if seq_len else ''}{width} "
                            "(the exported seq_len)")
    columns = {name: [row + [0] * (width - len(row)) for row in rows]
               for name, rows in zip(ID_INPUTS, (token_ids, segment_ids, padding_mask))}
    return _body(columns, signature, form)


def read_texts(path):
    """The texts of a request file.

    Args:
        path: UTF-8 text file: one text a line, or `text<TAB>text_pair` on
            every line (pairs are all or nothing: the signature takes
            `text_pair` or it does not). Blank lines are skipped.

    Returns:
        `(texts, text_pairs or None)`.

    Raises:
        DataError: naming the file and line (a tab on some lines only, no
            text at all, or what `kbert.io` finds wrong with the file).
    """
    from kbert.io import iter_text_lines

    rows, first = [], None
    for number, line in iter_text_lines(path):
        if not line.strip():
            continue
        row = line.split("\t", 1)
        if first is None:
            first = (number, len(row))
        elif len(row) != first[1]:
            raise DataError(f"{path}:{number}: {'no' if len(row) == 1 else 'a'} tab, unlike line {first[0]}: "
                            "use 'text<TAB>text_pair' on every line or on none")
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: only blank lines, expected one text a line")
    return [r[0] for r in rows], ([r[1] for r in rows] if first[1] == 2 else None)


def export_ids_request(export_dir, texts, text_pairs=None, form="instances"):
    """An `ids` request for an export, tokenized as the export does: its
    `vocab.txt`, and the casing and `seq_len` of its `model_card.json`.

    Imports TensorFlow (the tokenizer); the other builders here do not.

    Args:
        export_dir: an export directory (`exports/NAME`).
        texts: list of strings; text_pairs: optional second texts.
        form: "instances" or "inputs".
    """
    card_path = os.path.join(os.fspath(export_dir), "model_card.json")
    from kbert.io import read_json

    card = read_json(card_path)
    if "seq_len" not in card:
        raise DataError(f"{card_path}: no seq_len")
    from kbert.tokenization import BertTokenizer

    tokenizer = BertTokenizer(os.path.join(os.fspath(export_dir), "vocab.txt"), lowercase=card.get("lowercase", True))
    packed = tokenizer(_strings(texts, "texts"), None if text_pairs is None else _strings(text_pairs, "text_pairs"),
                       seq_len=int(card["seq_len"]))
    rows = {k: v.numpy().tolist() for k, v in packed.items()}
    return ids_request(rows["token_ids"], rows["segment_ids"], rows["padding_mask"], form=form)


def body_json(body, indent=2):
    """`body` as indented JSON text with each list of numbers or strings on
    one line, so a `[batch, seq_len]` ids request stays readable."""
    def write(value, depth):
        pad = " " * (indent * (depth + 1))
        if isinstance(value, dict) and value:
            items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {write(v, depth + 1)}" for k, v in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + " " * (indent * depth) + "}"
        if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
            return "[\n" + ",\n".join(pad + write(v, depth + 1) for v in value) + "\n" + " " * (indent * depth) + "]"
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))

    return write(body, 0)


def predict_url(url=DEFAULT_URL, model="model", version=None):
    """`URL/v1/models/MODEL[/versions/VERSION]:predict`; a `url` that already
    names a `:predict` endpoint is returned unchanged."""
    url = url.rstrip("/")
    if url.endswith(":predict"):
        return url
    return f"{url}/v1/models/{model}" + (f"/versions/{int(version)}" if version is not None else "") + ":predict"


def curl_command(url, body):
    """A shell `curl` command line that POSTs `body` to `url`."""
    return (f"curl -s -X POST {shlex.quote(url)} -H 'Content-Type: application/json' "
            f"-d {shlex.quote(json.dumps(body, ensure_ascii=False))}")


def post(url, body, timeout=30.0):
    """POST `body` to a running model server and return the decoded response.

    Args:
        url: the full predict URL (see `predict_url`).
        body: a request dict from `predict_request` or `ids_request`.
        timeout: seconds to wait for the connection and the answer.

    Raises:
        ServingError: the server cannot be reached, times out, or answers
            with an HTTP error (its `{"error": ...}` message is included).
    """
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")
        try:
            detail = json.loads(detail).get("error", detail)
        except (ValueError, AttributeError):
            pass
        raise ServingError(f"{url}: HTTP {e.code}: {' '.join(str(detail).split())}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ServingError(f"{url}: cannot reach the model server ({reason}); is TF Serving running? "
                           "See exports/README.md") from None
    try:
        return json.loads(text)  # accepts TF Serving's bare NaN / Infinity
    except ValueError:
        raise ServingError(f"{url}: the answer is not JSON: {text[:200]!r}") from None


def serving_response(outputs, form="instances"):
    """A signature's outputs as the JSON text TF Serving's REST API returns.

    Args:
        outputs: dict of output name to array (numpy arrays, `tf.Tensor`s,
            nested lists); string outputs as `bytes` or `str`.
        form: the request's form: "instances" gives `{"predictions": [...]}`
            (all outputs must share the batch size), "inputs" gives
            `{"outputs": ...}`.

    Returns:
        The response text, in TF Serving's layout and number formatting. Keys
        are sorted: TF Serving itself promises no order.

    Examples:

    >>> import numpy as np
    >>> print(serving_response({"labels": np.array([b"pos"]), "score": np.array([0.9], "float32")}))
    {
        "predictions": [
            {
                "labels": "pos",
                "score": 0.9
            }
        ]
    }
    """
    if form not in FORMS:
        raise ConfigError(f"form: expected one of {list(FORMS)}, got {form!r}")
    if not outputs:
        raise ConfigError("outputs: empty; TF Serving cannot answer without an output")
    tensors = {name: _json_values(value, name.endswith("_bytes")) for name, value in sorted(outputs.items())}
    named = len(tensors) > 1  # one output: TF Serving drops its name
    if form == "instances":
        sizes = {name: len(values) for name, values in tensors.items() if isinstance(values, list)}
        if len(sizes) != len(tensors) or len(set(sizes.values())) > 1:
            raise ConfigError(f"instances: every output needs the same batch size, got {sizes}")
        rows = range(next(iter(sizes.values())))
        body = {"predictions": [{k: v[i] for k, v in tensors.items()} if named else next(iter(tensors.values()))[i]
                                for i in rows]}
    else:
        body = {"outputs": tensors if named else next(iter(tensors.values()))}
    # TF Serving writes NaN/Infinity unquoted, as json.dumps does by default.
    return json.dumps(body, indent=4, ensure_ascii=False)


def predict_locally(saved_model, body):
    """Answer a request body with a local SavedModel, as TF Serving would.

    For previews and docs where no model server runs: the body's inputs are
    fed to the named signature in this process and the outputs are written
    with `serving_response`. Imports TensorFlow (and tensorflow_text, whose
    ops kbert's serving signature uses).

    Args:
        saved_model: a SavedModel directory, or a directory of numbered
            versions (`exports/NAME/serving`) or an export directory
            (`exports/NAME`): the highest version is used, as TF Serving's
            default policy does.
        body: a request dict (`predict_request`, `ids_request`).

    Returns:
        The response text.
    """
    path = latest_version(saved_model)
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer's ops)

    signatures = tf.saved_model.load(path).signatures
    name = body.get("signature_name", "serving_default")
    if name not in signatures:
        raise DataError(f"{path}: no signature {name!r} (has {sorted(signatures)})")
    signature = signatures[name]
    specs = signature.structured_input_signature[1]
    form = "instances" if "instances" in body else "inputs"
    columns = _columns(body, list(specs))
    missing = sorted(set(specs) - set(columns))
    unknown = sorted(set(columns) - set(specs))
    if missing or unknown:
        raise DataError(f"signature {name!r} takes {sorted(specs)}; the request "
                        + (f"lacks {missing}" if missing else f"has unknown {unknown}"))
    feed = {k: tf.constant(v, dtype=specs[k].dtype) for k, v in columns.items()}
    out = signature(**feed)
    return serving_response({k: v.numpy() for k, v in out.items()}, form)


def latest_version(path):
    """The SavedModel TF Serving would serve from `path`: `path` itself, or the
    highest numbered version under `path/serving` or `path`."""
    path = os.fspath(path)
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    for folder in (os.path.join(path, "serving"), path):
        if os.path.isdir(folder):
            versions = [int(d) for d in os.listdir(folder) if d.isdigit()
                        and os.path.exists(os.path.join(folder, d, "saved_model.pb"))]
            if versions:
                return os.path.join(folder, str(max(versions)))
    raise DataError(f"{path}: no SavedModel (expected saved_model.pb, or numbered version folders)")


def _columns(body, names):
    """The request's inputs as {name: list over the batch}."""
    if "instances" in body:
        rows = body["instances"]
        if rows and not isinstance(rows[0], dict):  # bare values: the one input
            return {names[0]: rows}
        return {name: [row[name] for row in rows] for name in rows[0]} if rows else {}
    inputs = body["inputs"]
    return inputs if isinstance(inputs, dict) else {names[0]: inputs}


def _body(columns, signature, form):
    if form not in FORMS:
        raise ConfigError(f"form: expected one of {list(FORMS)}, got {form!r}")
    body = {"signature_name": str(signature)}
    if form == "inputs":
        body["inputs"] = columns
    else:
        names = list(columns)
        body["instances"] = [dict(zip(names, row)) for row in zip(*columns.values())]
    return body


def _strings(values, name):
    if isinstance(values, (str, bytes)):
        raise DataError(f"{name}: expected a list of strings, got a single string")
    values = list(values)
    if not values:
        raise DataError(f"{name}: no text given")
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise DataError(f"{name}[{i}]: expected a string, got {type(v).__name__}")
    return values


def _int_rows(rows, name):
    rows = [list(row) for row in rows]
    if not rows:
        raise DataError(f"{name}: no rows given")
    out = []
    for i, row in enumerate(rows):
        try:
            if any(isinstance(v, bool) for v in row):
                raise TypeError
            out.append([operator.index(v) for v in row])  # ints and numpy ints, not floats
        except TypeError:
            raise DataError(f"{name} row {i}: expected integers, got {row!r}") from None
    return out


def _json_values(value, as_bytes):
    """An output as nested Python lists, numbers as TF Serving writes them:
    float32 in the fewest digits that round-trip to the same float32 (so 0.9
    stays 0.9, not 0.8999999761581421), strings as UTF-8 text, and outputs
    named `*_bytes` as `{"b64": ...}` (TF Serving's convention for binary)."""
    import numpy as np

    if hasattr(value, "numpy"):  # a tf.Tensor
        value = value.numpy()
    array = np.asarray(value)
    kind = array.dtype.kind
    if kind not in "fiubSOU":
        raise ConfigError(f"output dtype {array.dtype} has no TF Serving JSON form")
    if kind in "SOU":
        def text(v):
            raw = v if isinstance(v, bytes) else str(v).encode("utf-8")
            if as_bytes:
                return {"b64": base64.b64encode(raw).decode("ascii")}
            return raw.decode("utf-8", "replace")

        return np.vectorize(text, otypes=[object])(array).tolist() if array.ndim else text(array.item())
    if kind == "f" and array.dtype.itemsize <= 4:
        # str of a float32 is its shortest round-trip decimal; float() keeps it.
        def shortest(v):
            return float(str(np.float32(v)))

        return np.vectorize(shortest, otypes=[object])(array).tolist() if array.ndim else shortest(array.item())
    return array.tolist()
