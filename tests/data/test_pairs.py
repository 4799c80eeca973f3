"""Pair files and retrieval sets of the embed task: columns found by name or
given, SQuAD as pairs and as retrieval, BEIR-style files, one-line errors."""

import json

import pytest

from kbert.data.pairs import (
    PairData,
    pairs_retrieval,
    read_pairs,
    read_retrieval,
    read_squad_json,
    squad_retrieval,
)
from kbert.errors import ConfigError, DataError


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


SQUAD = {"data": [
    {"title": "A", "paragraphs": [
        {"context": "Paris is the capital of France.", "qas": [
            {"id": "q1", "question": "What is the capital of France?", "answers": [{"text": "Paris", "answer_start": 0}]},
            {"id": "q2", "question": "Which country has Paris?", "answers": [{"text": "France", "answer_start": 24}]}]},
        {"context": "Rome is in Italy.", "qas": [
            {"id": "q3", "question": "Where is Rome?", "answers": [{"text": "Italy", "answer_start": 11}]}]}]},
    {"title": "B", "paragraphs": [
        {"context": "Water boils at 100 degrees.", "qas": [
            {"id": "q4", "question": "When does water boil?", "answers": [{"text": "100", "answer_start": 15}]}]}]},
]}


def test_pairs_columns_by_name_and_triplets(tmp_path):
    data = read_pairs(write(tmp_path / "p.tsv", "query\tdocument\tnegative\nq one\td one\tn one\nq two\td two\tn two\n"))
    assert (data.anchors, data.others, data.negatives, data.scores) == (
        ["q one", "q two"], ["d one", "d two"], ["n one", "n two"], None)
    assert data.lines == [2, 3] and len(data) == 2
    assert data.texts() == ["q one", "q two", "d one", "d two", "n one", "n two"]
    assert data[1:].anchors == ["q two"] and data[1:].negatives == ["n two"]


def test_scored_pairs_csv_jsonl_and_headerless(tmp_path):
    sts = read_pairs(write(tmp_path / "s.csv", 'sentence1,sentence2,score\n"a, b",c,0.5\nd,e,-0.25\n'))
    assert sts.anchors == ["a, b", "d"] and sts.scores == [0.5, -0.25] and not sts.binary
    labelled = read_pairs(write(tmp_path / "l.jsonl", '{"text": "x", "text_pair": "y", "label": 1}\n'
                                                      '{"text": "z", "text_pair": "w", "label": 0}\n'))
    assert labelled.scores == [1.0, 0.0] and labelled.binary
    bare = read_pairs(write(tmp_path / "b.tsv", "x\ty\tignored\nz\tw\tignored\n"), header=False)
    assert (bare.anchors, bare.others, bare.negatives, bare.scores) == (["x", "z"], ["y", "w"], None, None)
    named = read_pairs(write(tmp_path / "c.tsv", "x\ty\t0.5\n"), header=False, score_column="2")
    assert named.scores == [0.5]


@pytest.mark.parametrize("text, options, message", [
    ("a\tb\nx\ty\n", {}, r"p.tsv:2: no anchor column \(looked for anchor"),
    ("anchor\tpositive\nx\t \n", {}, r"p.tsv:2: empty text in column positive"),
    ("anchor\tpositive\tscore\nx\ty\thigh\n", {}, r"p.tsv:2: score 'high' in column score is not a number"),
    ("anchor\tpositive\tscore\nx\ty\tnan\n", {}, r"p.tsv:2: score 'nan' .* not a finite number"),
    ("anchor\tpositive\nx\ty\textra\n", {}, r"p.tsv:2: 3 columns, the header has 2"),
    ("anchor\tpositive\tnegative\tscore\nx\ty\tz\t1\n", {}, r"p.tsv:2: both a negative column"),
    ("anchor\tpositive\nx\ty\n", {"anchor_column": "query"}, r"p.tsv:2: no anchor column 'query'"),
])
def test_bad_pair_files_name_file_and_line(tmp_path, text, options, message):
    with pytest.raises(DataError, match=message):
        read_pairs(write(tmp_path / "p.tsv", text), **options)


def test_squad_as_pairs_and_as_retrieval(tmp_path):
    path = write(tmp_path / "squad.json", json.dumps(SQUAD))
    assert read_squad_json(path)["data"]
    pairs = read_pairs(path)
    assert pairs.anchors[0] == "What is the capital of France?" and pairs.others[2] == "Rome is in Italy."
    assert pairs.lines == ["q1", "q2", "q3", "q4"] and pairs.scores is None
    assert read_pairs(path, articles=slice(1, None)).anchors == ["When does water boil?"]
    data = squad_retrieval(path, articles=slice(0, 1))
    assert data.documents == ["Paris is the capital of France.", "Rome is in Italy."]
    assert data.relevant == [(0,), (0,), (1,)] and data.query_ids == ["q1", "q2", "q3"]
    # The first queries and their documents: the verification subset of an export.
    first = data[2:3]
    assert first.queries == ["Where is Rome?"] and first.documents == ["Rome is in Italy."]
    assert first.relevant == [(0,)]
    with pytest.raises(ConfigError, match="articles: slices a SQuAD file"):
        read_pairs(write(tmp_path / "p.tsv", "anchor\tpositive\nx\ty\n"), articles=slice(0, 1))
    # A JSON Lines file named .json is read as rows, not as SQuAD.
    lines = write(tmp_path / "pairs.json", '{"anchor": "a", "positive": "b"}\n{"anchor": "c", "positive": "d"}\n')
    assert read_squad_json(lines) is None and read_pairs(lines).others == ["b", "d"]


def test_pairs_without_scores_as_retrieval():
    pairs = PairData(["q1", "q2", "q3"], ["d1", "d2", "d1"], ["n1", "n2", "d2"], None, [2, 3, 4], "p.tsv")
    data = pairs_retrieval(pairs)
    # Distinct positives then negatives: a negative that is another row's positive is one document.
    assert data.documents == ["d1", "d2", "n1", "n2"] and data.relevant == [(0,), (1,), (0,)]
    assert data.query_ids == ["2", "3", "4"] and data.texts() == ["q1", "q2", "q3", "d1", "d2", "n1", "n2"]


def test_queries_corpus_relevance_files(tmp_path):
    queries = write(tmp_path / "queries.jsonl", '{"_id": "a", "text": "first?"}\n{"_id": "b", "text": "second?"}\n'
                                                '{"_id": "c", "text": "unjudged?"}\n')
    corpus = write(tmp_path / "corpus.tsv", "id\ttitle\ttext\nd1\tOne\tthe first doc\nd2\t\tthe second doc\n")
    qrels = write(tmp_path / "qrels.tsv", "query-id\tcorpus-id\tscore\na\td1\t1\nb\td2\t2\nb\td1\t0\n")
    data = read_retrieval(queries, corpus, qrels)
    assert data.queries == ["first?", "second?"] and data.unjudged == 1
    assert data.documents == ["One the first doc", "the second doc"] and data.relevant == [(0,), (1,)]
    lines = write(tmp_path / "q.txt", "first?\n\nsecond?\n")
    qrels_lines = write(tmp_path / "r.tsv", "qid\tdoc_id\n1\td1\n3\td2\n")
    assert read_retrieval(lines, corpus, qrels_lines).query_ids == ["1", "3"]
    bad = write(tmp_path / "bad.tsv", "query-id\tcorpus-id\na\td9\n")
    with pytest.raises(DataError, match=r"bad.tsv:2: document id 'd9' is not in .*corpus.tsv"):
        read_retrieval(queries, corpus, bad)
    twice = write(tmp_path / "twice.jsonl", '{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n')
    with pytest.raises(DataError, match=r"twice.jsonl:2: id 'a' again \(first at line 1\)"):
        read_retrieval(twice, corpus, qrels)
