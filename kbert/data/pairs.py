"""Sentence-embedding data: text pairs for training, retrieval sets for evaluation.

Pairs come from the classification readers' formats (TSV with a header, CSV,
JSON Lines; `kbert.data.classification`), one pair a row:

* `(anchor, positive)` or `(anchor, positive, negative)`: trained with
  in-batch negatives (`kbert.tasks.embed`); columns found by name
  (`ANCHOR_COLUMNS`, `POSITIVE_COLUMNS`, `NEGATIVE_COLUMNS`) or given;
* `(anchor, other, score)`: a similarity score per pair (`SCORE_COLUMNS`),
  trained with the cosine-similarity loss, evaluated with Spearman (or, for
  0/1 labels, cosine-threshold accuracy/F1 and ROC AUC);
* a SQuAD v1.1/v2.0 JSON file: (question, its paragraph) pairs, optionally a
  slice of the articles.

Retrieval sets (`RetrievalData`) are queries, a corpus and which documents are
relevant to each query. They come from three files (queries, corpus and a
relevance file in the BEIR layout: `query-id<TAB>corpus-id<TAB>score`), from
SQuAD (each question's relevant document is its paragraph; the corpus is the
distinct paragraphs of the articles read) or from a pair file without scores
(each anchor's relevant document is its positive; the corpus is the distinct
positives and negatives).

Every error names the file and line (or the JSON path for SQuAD).
"""

import dataclasses
import math
import os

from kbert.data.classification import _field, _json_rows, _name, _table_rows, detect_format, find_column
from kbert.errors import ConfigError, DataError, KbertError

ANCHOR_COLUMNS = ("anchor", "query", "question", "sentence1", "text", "sentence", "#1 String")
POSITIVE_COLUMNS = ("positive", "document", "passage", "paragraph", "context", "sentence2", "text_pair", "pair",
                    "#2 String")
NEGATIVE_COLUMNS = ("negative", "hard_negative")
SCORE_COLUMNS = ("score", "label", "similarity", "Quality")
ID_COLUMNS = ("id", "_id", "query_id", "query-id", "qid", "doc_id", "corpus_id", "corpus-id", "pid")
TEXT_COLUMNS = ("text", "query", "question", "document", "passage", "paragraph", "context", "sentence")
RELEVANCE_QUERY_COLUMNS = ("query-id", "query_id", "qid")
RELEVANCE_DOC_COLUMNS = ("corpus-id", "corpus_id", "doc-id", "doc_id", "pid")
RELEVANCE_SCORE_COLUMNS = ("score", "relevance", "label")


@dataclasses.dataclass(frozen=True)
class PairData:
    """Rows of a pair file.

    Attributes:
        anchors: the first texts.
        others: the second texts (positives, or the texts a score compares).
        negatives: hard negatives, or None.
        scores: one float per row, or None for `(anchor, positive)` pairs.
        lines: where each row is (line number, or a SQuAD question id).
        source: the file path.
    """

    anchors: list
    others: list
    negatives: list
    scores: list
    lines: list
    source: str

    def __len__(self):
        return len(self.anchors)

    def __getitem__(self, index):
        if not isinstance(index, slice):
            raise TypeError("PairData takes slices")
        cut = (lambda v: None if v is None else list(v[index]))
        return PairData(cut(self.anchors), cut(self.others), cut(self.negatives), cut(self.scores),
                        cut(self.lines), self.source)

    @property
    def binary(self):
        """Whether the scores are 0/1 labels (pair classification)."""
        return self.scores is not None and set(self.scores) <= {0.0, 1.0}

    def texts(self):
        """Every text of the rows: anchors, then others, then negatives."""
        return list(self.anchors) + list(self.others) + list(self.negatives or [])


@dataclasses.dataclass(frozen=True)
class RetrievalData:
    """Queries, a corpus and the relevant documents of each query.

    Attributes:
        query_ids, queries: the queries (ids as strings).
        doc_ids, documents: the corpus.
        relevant: per query, the tuple of indices into `documents` relevant to it.
        source: what it was read from.
        unjudged: queries left out because no document is relevant to them.
    """

    query_ids: list
    queries: list
    doc_ids: list
    documents: list
    relevant: list
    source: str
    unjudged: int = 0

    def __len__(self):
        return len(self.queries)

    def __getitem__(self, index):
        """A slice of the queries, searched among the documents relevant to
        them (what an export is verified on: bounded work, the same set for
        every artifact)."""
        if not isinstance(index, slice):
            raise TypeError("RetrievalData takes slices")
        relevant = self.relevant[index]
        kept = sorted({d for r in relevant for d in r})
        at = {d: i for i, d in enumerate(kept)}
        return dataclasses.replace(self, query_ids=self.query_ids[index], queries=self.queries[index],
                                   doc_ids=[self.doc_ids[d] for d in kept], documents=[self.documents[d] for d in kept],
                                   relevant=[tuple(at[d] for d in r) for r in relevant])

    def texts(self):
        """Every text to embed: the queries, then the documents."""
        return list(self.queries) + list(self.documents)


def _rows(path, format, header):
    format = format or detect_format(path)
    if format not in ("tsv", "csv", "jsonl"):
        raise KbertError(f"format: expected one of ['tsv', 'csv', 'jsonl'], got {format!r}")
    return _json_rows(path) if format == "jsonl" else _table_rows(path, format, header)


def _text(row, key, path, line):
    value = _field(row, key, path, line)
    if not value.strip():
        raise DataError(f"{path}:{line}: empty text in column {_name(key)}")
    return value


def _number(row, key, path, line):
    value = _field(row, key, path, line).strip()
    try:
        number = float(value)
    except ValueError:
        raise DataError(f"{path}:{line}: score {value!r} in column {_name(key)} is not a number") from None
    if not math.isfinite(number):
        raise DataError(f"{path}:{line}: score {value!r} in column {_name(key)} is not a finite number")
    return number


def read_pairs(path, anchor_column=None, positive_column=None, negative_column=None, score_column=None,
               format=None, header=True, articles=None):
    """Read a pair file, or (question, paragraph) pairs of a SQuAD JSON file.

    Args:
        path: TSV/CSV/JSONL pair file, or a SQuAD `.json` file.
        anchor_column, positive_column, negative_column, score_column: column
            names (0-based indices with `header=False`); default: the first
            of `ANCHOR_COLUMNS`, `POSITIVE_COLUMNS`, `NEGATIVE_COLUMNS`,
            `SCORE_COLUMNS` present (without a header: columns 0 and 1, and
            no negative or score unless named). `""` leaves a column out.
        format: `tsv`, `csv` or `jsonl`; default from the extension.
        header: whether a CSV/TSV file starts with a header row.
        articles: SQuAD only: a `slice` of the articles to read.

    Returns:
        A `PairData`.

    Raises:
        DataError: a missing column, an empty text, a score that is not a
            number, naming the file and line.

    Examples:
    ```python
    pairs = read_pairs("pairs.tsv")                      # anchor, positive[, negative]
    sts = read_pairs("sts.csv", score_column="score")    # sentence1, sentence2, score
    squad = read_pairs("dev-v1.1.json", articles=slice(0, 38))
    ```
    """
    path = os.fspath(path)
    squad = read_squad_json(path)
    if squad is not None:
        from kbert.data.squad import read_squad

        examples = read_squad(path, articles=articles)
        if not examples:
            raise DataError(f"{path}: no questions in the articles read")
        return PairData([e.question for e in examples], [e.context for e in examples], None, None,
                        [e.id for e in examples], path)
    if articles is not None:
        raise ConfigError(f"articles: slices a SQuAD file, and {path} is not one")
    if not header:
        anchor_column = 0 if anchor_column is None else anchor_column
        positive_column = 1 if positive_column is None else positive_column
        negative_column = "" if negative_column is None else negative_column
        score_column = "" if score_column is None else score_column
    anchors, others, negatives, scores, lines = [], [], [], [], []
    keys = None
    for line, row in _rows(path, format, header):
        if keys is None:
            keys = (
                find_column(row, anchor_column, ANCHOR_COLUMNS, "anchor", path, line, True, "anchor-column"),
                find_column(row, positive_column, POSITIVE_COLUMNS, "positive", path, line, True, "positive-column"),
                find_column(row, negative_column, NEGATIVE_COLUMNS, "negative", path, line, False, "negative-column"),
                find_column(row, score_column, SCORE_COLUMNS, "score", path, line, False, "score-column"),
            )
            if keys[2] is not None and keys[3] is not None:
                raise DataError(f"{path}:{line}: both a negative column ({_name(keys[2])}) and a score column "
                                f"({_name(keys[3])}): give one (--negative-column '' or --score-column '')")
        anchor_key, other_key, negative_key, score_key = keys
        anchors.append(_text(row, anchor_key, path, line))
        others.append(_text(row, other_key, path, line))
        if negative_key is not None:
            negatives.append(_text(row, negative_key, path, line))
        if score_key is not None:
            scores.append(_number(row, score_key, path, line))
        lines.append(line)
    if not anchors:
        raise DataError(f"{path}: no rows")
    return PairData(anchors, others, negatives if keys[2] is not None else None,
                    scores if keys[3] is not None else None, lines, path)


def read_squad_json(path):
    """The parsed SQuAD file at `path`, or None when it is not a `.json`
    file holding `{"data": [...]}` (a JSON Lines file named `.json` is None)."""
    from kbert.io import read_json

    if os.path.splitext(os.fspath(path))[1].lower() != ".json":
        return None
    try:
        root = read_json(path)
    except DataError as e:
        if "invalid JSON" in str(e):  # JSON Lines (several values), read as rows
            return None
        raise
    return root if isinstance(root, dict) and "data" in root else None


def squad_retrieval(path, articles=None):
    """Question -> paragraph retrieval on a SQuAD file.

    Args:
        path: SQuAD v1.1/v2.0 JSON.
        articles: a `slice` of the articles (e.g. `slice(38, None)`).

    Returns:
        A `RetrievalData` whose corpus is the distinct paragraphs of the
        articles read (in file order) and whose queries are their questions.
    """
    from kbert.data.squad import read_squad

    examples = read_squad(path, articles=articles)
    if not examples:
        raise DataError(f"{path}: no questions in the articles read")
    index = {}
    for e in examples:
        index.setdefault(e.context, len(index))
    documents = list(index)
    return RetrievalData([e.id for e in examples], [e.question for e in examples],
                         [f"p{i}" for i in range(len(documents))], documents,
                         [(index[e.context],) for e in examples], os.fspath(path))


def pairs_retrieval(pairs):
    """Retrieval on a pair file without scores: each anchor's relevant document
    is its positive; the corpus is the distinct positives and negatives."""
    index = {}
    for text in list(pairs.others) + list(pairs.negatives or []):
        index.setdefault(text, len(index))
    documents = list(index)
    return RetrievalData([str(line) for line in pairs.lines], list(pairs.anchors),
                         [f"d{i}" for i in range(len(documents))], documents,
                         [(index[text],) for text in pairs.others], pairs.source)


def _id_text_file(path, what, format, header):
    """(ids, texts) of a queries or corpus file: `.txt` one text a line (ids
    are line numbers), else rows with an id and a text column (a `title`
    column goes before the text, as BEIR corpora are read)."""
    from kbert.io import iter_text_lines

    path = os.fspath(path)
    ids, texts, where = [], [], {}
    if os.path.splitext(path)[1].lower() == ".txt":
        rows = ((line, {"id": str(line), "text": text}) for line, text in iter_text_lines(path) if text.strip())
    else:
        rows = _rows(path, format, header)
    keys = None
    for line, row in rows:
        if keys is None:
            keys = (find_column(row, None, ID_COLUMNS, "id", path, line, True, f"{what} file's id column"),
                    find_column(row, None, TEXT_COLUMNS, "text", path, line, True, f"{what} file's text column"),
                    "title" if "title" in row else None)
        doc_id = _field(row, keys[0], path, line).strip()
        if doc_id in where:
            raise DataError(f"{path}:{line}: id {doc_id!r} again (first at line {where[doc_id]})")
        where[doc_id] = line
        text = _field(row, keys[1], path, line)
        title = _field(row, keys[2], path, line).strip() if keys[2] else ""
        text = f"{title} {text}".strip() if title else text
        if not text.strip():
            raise DataError(f"{path}:{line}: empty text")
        ids.append(doc_id)
        texts.append(text)
    if not ids:
        raise DataError(f"{path}: no rows")
    return ids, texts


def read_retrieval(queries, corpus, relevance, format=None, header=True):
    """A retrieval set from a queries file, a corpus file and a relevance file.

    Args:
        queries: `.txt` (one query a line; its id is the line number) or a
            TSV/CSV/JSONL file with id and text columns (`ID_COLUMNS`,
            `TEXT_COLUMNS`).
        corpus: the same for the documents (a `title` column is put before
            the text).
        relevance: TSV/CSV/JSONL with a header: query id, document id and an
            optional score (`RELEVANCE_*_COLUMNS`; BEIR's `query-id`,
            `corpus-id`, `score`). A row with score <= 0 is not relevant.
        format, header: for the TSV/CSV/JSONL files.

    Returns:
        A `RetrievalData`; queries with no relevant document are left out
        (counted in `unjudged`).

    Raises:
        DataError: duplicate ids, ids of the relevance file that are not in
            the queries or corpus, naming the file and line.
    """
    query_ids, query_texts = _id_text_file(queries, "queries", format, header)
    doc_ids, documents = _id_text_file(corpus, "corpus", format, header)
    query_at = {q: i for i, q in enumerate(query_ids)}
    doc_at = {d: i for i, d in enumerate(doc_ids)}
    relevant = [[] for _ in query_ids]
    path = os.fspath(relevance)
    keys = None
    for line, row in _rows(path, format, True):
        if keys is None:
            keys = (find_column(row, None, RELEVANCE_QUERY_COLUMNS, "query id", path, line, True, "relevance columns"),
                    find_column(row, None, RELEVANCE_DOC_COLUMNS, "document id", path, line, True, "relevance columns"),
                    find_column(row, None, RELEVANCE_SCORE_COLUMNS, "score", path, line, False, "relevance columns"))
        qid, did = (_field(row, k, path, line).strip() for k in keys[:2])
        if qid not in query_at:
            raise DataError(f"{path}:{line}: query id {qid!r} is not in {os.fspath(queries)}")
        if did not in doc_at:
            raise DataError(f"{path}:{line}: document id {did!r} is not in {os.fspath(corpus)}")
        if keys[2] is None or _number(row, keys[2], path, line) > 0:
            if doc_at[did] not in relevant[query_at[qid]]:
                relevant[query_at[qid]].append(doc_at[did])
    if keys is None:
        raise DataError(f"{path}: no rows")
    judged = [i for i, r in enumerate(relevant) if r]
    if not judged:
        raise DataError(f"{path}: no query has a relevant document")
    return RetrievalData([query_ids[i] for i in judged], [query_texts[i] for i in judged], doc_ids, documents,
                         [tuple(relevant[i]) for i in judged], path, unjudged=len(query_ids) - len(judged))
