"""The docstring corpus used by `kbert quickstart --from-scratch`."""

from kbert.data.docstrings import docstring_documents, write_docstring_corpus


def test_docstring_documents_keep_prose_only(tmp_path):
    source = tmp_path / "m.py"
    source.write_text('''"""Tools for reading the weather. They work offline and need no account.

>>> read("today")
'sunny'

name: the city to look up
"""


def f():
    """Return the forecast for the next three days as plain text. It may be empty."""
''', encoding="utf-8")
    assert docstring_documents(str(source)) == [
        ["Tools for reading the weather.", "They work offline and need no account."],
        ["Return the forecast for the next three days as plain text.", "It may be empty."],
    ]
    (tmp_path / "bad.py").write_bytes(b"\xff\xfe not python")
    assert docstring_documents(str(tmp_path / "bad.py")) == []


def test_write_docstring_corpus_is_bert_format(tmp_path):
    out = tmp_path / "corpus.txt"
    documents, sentences, size = write_docstring_corpus(out, max_bytes=200_000, packages=())
    text = out.read_text(encoding="utf-8")
    assert documents > 100 and sentences >= documents and size == len(text.encode("utf-8")) >= 200_000
    blocks = text.strip().split("\n\n")
    assert len(blocks) == documents and len(set(blocks)) == documents  # deduplicated documents
    assert all(line.strip() and ">>>" not in line for block in blocks for line in block.splitlines())
