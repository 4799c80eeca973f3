"""Text classification and regression data: CSV / TSV / JSONL files to `tf.data`.

Reads one text (or a text pair) and a label per row, from:

* TSV with a header row, GLUE style: SST-2's `sentence<TAB>label`, MRPC's
  `msr_paraphrase_*.txt` (`Quality`, `#1 String`, `#2 String`). Quote
  characters are text in GLUE files, so TSV is read without quoting.
* CSV with a header row (standard quoting; fields may span lines).
* JSON Lines: one object per line.

Columns are found by `--text-column` / `--pair-column` / `--label-column` or,
when not given, by the usual names (`sentence`/`text`/`sentence1`/`#1 String`,
`sentence2`/`#2 String`, `label`/`Quality`). Without a header row
(`header=False`) columns are 0-based indices.

Labels are names (strings) in the files; `make_labels` turns them into an id
order kept in the model directory. Labels that are all numbers with at least
one non-integer (`3.8`) make a regression task.

Tokenization happens in the `tf.data` graph with `kbert.BertTokenizer`. We
write these readers rather than use `tf.data.experimental.make_csv_dataset` or
`tensorflow_datasets` because errors must name the file and line, GLUE's TSVs
need quoting turned off, and the label mapping must be stored with the model.
"""

import csv
import dataclasses
import json
import os

from kbert.errors import DataError, KbertError
from kbert.io import has_control_characters, iter_text_lines

TEXT_COLUMNS = ("sentence", "text", "sentence1", "#1 String", "question", "review")
PAIR_COLUMNS = ("sentence2", "#2 String", "text_pair", "pair")
LABEL_COLUMNS = ("label", "Quality", "labels", "score")
FORMATS = ("tsv", "csv", "jsonl")


@dataclasses.dataclass(frozen=True)
class TextData:
    """Rows of a classification file.

    Attributes:
        texts: list of str.
        pairs: list of str, or None for single-text data.
        labels: list of label names (str), or None when the file has no labels.
        lines: 1-based line number of each row (for error messages).
        source: the file path.
    """

    texts: list
    pairs: list
    labels: list
    lines: list
    source: str

    def __len__(self):
        return len(self.texts)


def detect_format(path):
    """`tsv`, `csv` or `jsonl` from the file name (`.txt` files are TSV, as
    GLUE's MRPC files are)."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if ext == ".csv":
        return "csv"
    return "tsv"


def read_text_data(
    path,
    text_column=None,
    pair_column=None,
    label_column=None,
    format=None,
    header=True,
    require_labels=True,
):
    """Read a classification / regression file.

    Args:
        path: the file.
        text_column: column name (or 0-based index without a header) of the
            text; default: the first of `TEXT_COLUMNS` present.
        pair_column: column of the second text for sentence pairs; default:
            the first of `PAIR_COLUMNS` present, else single texts. Pass `""`
            to force single texts.
        label_column: column of the label; default: the first of
            `LABEL_COLUMNS` present.
        format: `tsv`, `csv` or `jsonl`; default from the file extension.
        header: whether a CSV/TSV file starts with a header row.
        require_labels: raise if no label column is found (prediction input
            may have none).

    Returns:
        A `TextData`.

    Raises:
        DataError: unreadable file, missing column, short row, empty label,
            naming the file and line.

    Examples:

    >>> data = read_text_data("sst2/train.tsv")                  # sentence, label
    >>> data = read_text_data("mrpc/msr_paraphrase_train.txt")   # pair + Quality
    >>> data = read_text_data("reviews.jsonl", text_column="body", label_column="stars")
    """
    path = os.fspath(path)
    format = format or detect_format(path)
    if format not in FORMATS:
        raise KbertError(f"format: expected one of {list(FORMATS)}, got {format!r}")
    rows = _json_rows(path) if format == "jsonl" else _table_rows(path, format, header)
    texts, pairs, labels, lines = [], [], [], []
    columns = None
    for line, row in rows:
        if columns is None:
            columns = _resolve(row, path, line, text_column, pair_column, label_column, require_labels)
        text_key, pair_key, label_key = columns
        texts.append(_field(row, text_key, path, line))
        if pair_key is not None:
            pairs.append(_field(row, pair_key, path, line))
        if label_key is not None:
            label = _field(row, label_key, path, line).strip()
            if not label:
                raise DataError(f"{path}:{line}: empty label in column {_name(label_key)}")
            if has_control_characters(label):
                # labels.txt and the model dir hold one label a line.
                raise DataError(f"{path}:{line}: label {label!r} holds a line break or control character")
            labels.append(label)
        lines.append(line)
    if not texts:
        raise DataError(f"{path}: no rows")
    return TextData(
        texts,
        pairs if columns[1] is not None else None,
        labels if columns[2] is not None else None,
        lines,
        path,
    )


def _table_rows(path, format, header):
    lines = (line + "\n" for _, line in iter_text_lines(path))
    if format == "tsv":
        reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(lines)
    names = None
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if header and names is None:
                names = [cell.strip() for cell in row]
                continue
            line = reader.line_num
            if names is None:
                yield line, dict(enumerate(row))
                continue
            if len(row) != len(names):
                raise DataError(f"{path}:{line}: {len(row)} columns, the header has {len(names)}")
            yield line, dict(zip(names, row))
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: {e}") from None
    if header and names is None:
        raise DataError(f"{path}: no rows")


def _json_rows(path):
    for line, text in iter_text_lines(path):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{line}: invalid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{line}: expected a JSON object, got {type(row).__name__}")
        yield line, row


def find_column(row, given, defaults, what, path, line, required, option=None):
    """The key of column `what` in `row`: the one `given` (a name, or an
    index in headerless rows; "" means none), else the first of `defaults`
    present. A missing required column is a `DataError` naming the file, the
    line, the columns there and the option (`--{what}-column` by default)."""
    if given is not None and given != "":
        key = _key(given, row)
        if key not in row:
            raise DataError(f"{path}:{line}: no {what} column {given!r} (columns: {', '.join(map(_name, row))})")
        return key
    if given == "":
        return None
    for name in defaults:
        if name in row:
            return name
    if required:
        raise DataError(f"{path}:{line}: no {what} column (looked for {', '.join(map(str, defaults))}; columns: "
                        f"{', '.join(map(_name, row))}); name it with --{option or what + '-column'}")
    return None


def _resolve(row, path, line, text_column, pair_column, label_column, require_labels):
    text_key = find_column(row, text_column, TEXT_COLUMNS, "text", path, line, True)
    pair_key = find_column(row, pair_column, PAIR_COLUMNS, "pair", path, line, False)
    label_key = find_column(row, label_column, LABEL_COLUMNS, "label", path, line, require_labels)
    return text_key, pair_key, label_key


def _key(given, row):
    # Headerless rows are keyed by index; "--text-column 1" means index 1 there.
    if isinstance(given, str) and given not in row and given.lstrip("-").isdigit():
        return int(given)
    return given


def _name(key):
    return str(key)


def _field(row, key, path, line):
    if key not in row:
        raise DataError(f"{path}:{line}: missing column {_name(key)}")
    value = row[key]
    if value is None:
        raise DataError(f"{path}:{line}: column {_name(key)} is null")
    if isinstance(value, (dict, list)):
        raise DataError(f"{path}:{line}: column {_name(key)}: expected text, got {type(value).__name__}")
    return str(value)


def is_regression(labels):
    """True when every label is a number and at least one is not an integer."""
    try:
        values = [float(label) for label in labels]
    except ValueError:
        return False
    return any(not _is_int(label) for label in labels) and all(v == v for v in values)


def _is_int(text):
    return text.strip().lstrip("+-").isdigit()


def make_labels(labels):
    """Label names in id order: integers numerically, other names sorted.

    Returns None for regression data (`is_regression`).
    """
    if is_regression(labels):
        return None
    names = set(labels)
    if all(_is_int(n) for n in names):
        return sorted(names, key=lambda n: int(n))
    return sorted(names)


def label_ids(data, labels):
    """Label ids of `data.labels` under the model's `labels` (None: regression
    floats). Unknown labels raise `DataError` naming the file and line."""
    if data.labels is None:
        raise DataError(f"{data.source}: no label column")
    if labels is None:
        out = []
        for label, line in zip(data.labels, data.lines):
            try:
                out.append(float(label))
            except ValueError:
                raise DataError(f"{data.source}:{line}: label {label!r} is not a number (regression model)") from None
        return out
    index = {name: i for i, name in enumerate(labels)}
    # "1" and "1.0" or " 1" are the same label for integer label sets.
    numeric = all(_is_int(n) for n in labels)
    out = []
    for label, line in zip(data.labels, data.lines):
        key = label
        if key not in index and numeric:
            try:
                value = float(label)
            except ValueError:
                value = None
            if value is not None and value.is_integer():
                key = str(int(value))
        if key not in index:
            raise DataError(
                f"{data.source}:{line}: unknown label {label!r} (the model's labels: {', '.join(labels)})"
            )
        out.append(index[key])
    return out


def text_dataset(data, tokenizer, seq_len, batch_size, targets=None, shuffle=False, seed=0):
    """A batched `tf.data.Dataset` of tokenized rows.

    Args:
        data: a `TextData`.
        tokenizer: a `kbert.BertTokenizer`.
        seq_len: sequence length (pairs are truncated longest-first).
        batch_size: batch size (the last batch may be smaller).
        targets: optional label ids (int) or regression values (float), one
            per row; the dataset then yields `(inputs, targets)`.
        shuffle: reshuffle every epoch (with `seed`).

    Returns:
        A dataset of `inputs` dicts (`token_ids`, `segment_ids`,
        `padding_mask`), or of `(inputs, targets)`.

    Examples:

    >>> data = read_text_data("sst2/train.tsv")
    >>> labels = make_labels(data.labels)
    >>> ds = text_dataset(data, tokenizer, 128, 32, label_ids(data, labels), shuffle=True)
    """
    import tensorflow as tf

    columns = [tf.constant(data.texts, tf.string)]
    if data.pairs is not None:
        columns.append(tf.constant(data.pairs, tf.string))
    if targets is not None:
        dtype = tf.float32 if any(isinstance(t, float) for t in targets) else tf.int32
        columns.append(tf.constant(targets, dtype))
    ds = tf.data.Dataset.from_tensor_slices(tuple(columns))
    if shuffle:
        ds = ds.shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    pair = data.pairs is not None
    labelled = targets is not None

    def encode(*batch):
        inputs = tokenizer(batch[0], batch[1] if pair else None, seq_len=seq_len)
        return (inputs, batch[-1]) if labelled else inputs

    return ds.map(encode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
