import dataclasses
import json

import numpy as np
import pytest

from conftest import data_path
from kbert.data.classification import (
    detect_format,
    is_regression,
    label_ids,
    make_labels,
    read_text_data,
    text_dataset,
)
from kbert.errors import DataError


def write(path, content, mode="w"):
    with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
        f.write(content)
    return str(path)


def test_glue_tsv_keeps_quotes_as_text(tmp_path):
    path = write(tmp_path / "train.tsv", 'sentence\tlabel\nit \'s a "charming" film \t1\nbleak \t0\n')
    data = read_text_data(path)
    assert data.texts == ['it \'s a "charming" film ', "bleak "]
    assert data.labels == ["1", "0"] and data.pairs is None and data.lines == [2, 3]


def test_mrpc_layout_with_bom_reads_pairs(tmp_path):
    path = write(
        tmp_path / "msr_paraphrase_train.txt",
        '\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t7\t8\tHe said "hi".\tHe greeted.\n',
    )
    data = read_text_data(path)
    assert (data.texts, data.pairs, data.labels) == (['He said "hi".'], ["He greeted."], ["1"])


def test_csv_multiline_field_and_jsonl(tmp_path):
    csv_path = write(tmp_path / "d.csv", 'text,label\n"two\nlines, one field",pos\nplain,neg\n')
    data = read_text_data(csv_path)
    assert data.texts == ["two\nlines, one field", "plain"] and data.lines == [3, 4]
    jsonl = write(tmp_path / "d.jsonl", json.dumps({"body": "x", "stars": 5}) + "\n\n" + json.dumps({"body": "y", "stars": 1}) + "\n")
    data = read_text_data(jsonl, text_column="body", label_column="stars")
    assert data.texts == ["x", "y"] and data.labels == ["5", "1"] and data.lines == [1, 3]


def test_headerless_columns_by_index(tmp_path):
    path = write(tmp_path / "cola.tsv", "src\t1\t\tGood sentence .\nsrc\t0\t*\tBad sentence .\n")
    data = read_text_data(path, text_column="3", label_column="1", header=False)
    assert data.texts == ["Good sentence .", "Bad sentence ."] and data.labels == ["1", "0"]


@pytest.mark.parametrize(
    "name, content, kwargs, message",
    [
        ("a.tsv", "sentence\tlabel\nok\t1\nshort\n", {}, "a.tsv:3: 1 columns, the header has 2"),
        ("b.tsv", "words\tlabel\nok\t1\n", {}, "b.tsv:2: no text column (looked for"),
        ("c.tsv", "sentence\tlabel\nok\t1\n", {"label_column": "gold"}, "c.tsv:2: no label column 'gold'"),
        ("d.tsv", "sentence\tlabel\nok\t \n", {}, "d.tsv:2: empty label in column label"),
        ("e.jsonl", '{"text": "a", "label": 1}\n{"text": \n', {}, "e.jsonl:2: invalid JSON"),
        ("f.jsonl", '[1, 2]\n', {}, "f.jsonl:1: expected a JSON object, got list"),
        ("g.tsv", "sentence\tlabel\n", {}, "g.tsv: no rows"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path, name, content, kwargs, message):
    path = write(tmp_path / name, content)
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        read_text_data(path, **kwargs)


def test_binary_and_non_utf8_files(tmp_path):
    with pytest.raises(DataError, match="binary"):
        read_text_data(write(tmp_path / "x.tsv", b"sentence\tlabel\n\x00\x01", "wb"))
    with pytest.raises(DataError, match=r"y.tsv:2: not valid UTF-8"):
        read_text_data(write(tmp_path / "y.tsv", b"sentence\tlabel\n\xff\t1\n", "wb"))


def test_labels_and_regression():
    assert make_labels(["1", "0", "10", "2"]) == ["0", "1", "2", "10"]
    assert make_labels(["pos", "neg", "pos"]) == ["neg", "pos"]
    assert is_regression(["3.8", "1", "0.5"]) and make_labels(["3.8", "1"]) is None
    assert not is_regression(["1", "0"]) and not is_regression(["1.5", "x"])
    assert detect_format("a.CSV") == "csv" and detect_format("m.txt") == "tsv" and detect_format("a.jsonl") == "jsonl"


def test_label_ids_unknown_label_names_line(tmp_path):
    data = read_text_data(write(tmp_path / "dev.tsv", "sentence\tlabel\na\t1\nb\t1.0\nc\t7\n"))
    with pytest.raises(DataError, match=r"dev.tsv:4: unknown label '7' \(the model's labels: 0, 1\)"):
        label_ids(data, ["0", "1"])
    assert label_ids(dataclasses.replace(data, labels=data.labels[:2], texts=data.texts[:2]), ["0", "1"]) == [1, 1]
    assert label_ids(data, None) == [1.0, 1.0, 7.0]


def test_text_dataset_batches_pairs(tmp_path):
    from kbert.tokenization import BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"]
    tok = BertTokenizer(vocab)
    path = write(tmp_path / "p.tsv", "sentence1\tsentence2\tlabel\na b\tc\tx\nc\ta a a a a\ty\nb\tb\tx\n")
    data = read_text_data(path)
    ds = text_dataset(data, tok, 6, 2, label_ids(data, make_labels(data.labels)))
    batches = list(ds.as_numpy_iterator())
    assert [len(y) for _, y in batches] == [2, 1]
    x, y = batches[0]
    np.testing.assert_array_equal(x["token_ids"][0], [2, 5, 6, 3, 7, 3])
    np.testing.assert_array_equal(x["segment_ids"][0], [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(x["token_ids"][1], [2, 7, 3, 5, 5, 3])  # longest-first truncation
    assert list(y) == [0, 1]


def test_real_glue_files():
    sst = read_text_data(data_path("sst2", "dev.tsv"))
    assert len(sst) == 872 and make_labels(sst.labels) == ["0", "1"]
    mrpc = read_text_data(data_path("mrpc", "msr_paraphrase_test.txt"))
    assert len(mrpc) == 1725 and mrpc.pairs is not None and sorted(set(mrpc.labels)) == ["0", "1"]
