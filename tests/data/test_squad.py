import json
import re
import string
import time

import numpy as np
import pytest

from conftest import data_path
from kbert.data.squad import (
    SquadExample,
    SquadFeatures,
    encode_squad,
    postprocess,
    prediction_texts,
    read_squad,
)
from kbert.errors import DataError, KbertError


def squad_json(articles=3):
    data = []
    for a in range(articles):
        context = f"Article {a} is about the river Nile and {a + 10} boats."
        data.append({
            "title": f"T{a}",
            "paragraphs": [{
                "context": context,
                "qas": [
                    {"id": f"q{a}-0", "question": "Which river?",
                     "answers": [{"text": "Nile", "answer_start": context.index("Nile")}]},
                    {"id": f"q{a}-1", "question": "How many boats?",
                     "answers": [{"text": str(a + 10), "answer_start": context.index(str(a + 10))},
                                 {"text": f"{a + 10} boats", "answer_start": context.index(str(a + 10))}]},
                ],
            }],
        })
    return {"version": "1.1", "data": data}


def write(tmp_path, values, name="dev.json"):
    path = tmp_path / name
    path.write_text(json.dumps(values) if not isinstance(values, str) else values, encoding="utf-8")
    return path


def example(context, answer, question="What is it?", qid="q", at=None, impossible=False):
    answers = []
    if answer is not None:
        answers = [{"text": answer, "answer_start": context.index(answer) if at is None else at}]
    return SquadExample(qid, "", question, context, answers, impossible)


# --- read_squad ----------------------------------------------------------------------


def test_read_squad_v1_and_v2_fields(tmp_path):
    values = squad_json(2)
    del values["data"][1]["title"]
    values["data"][1]["paragraphs"][0]["qas"].append({
        "id": "impossible", "question": "Who?", "answers": [], "is_impossible": True,
        "plausible_answers": [{"text": "Nile", "answer_start": 5}],
    })
    examples = read_squad(write(tmp_path, values))
    assert [e.id for e in examples] == ["q0-0", "q0-1", "q1-0", "q1-1", "impossible"]
    first = examples[1]
    assert first.title == "T0" and first.question == "How many boats?"
    assert first.answers == [{"text": "10", "answer_start": 38}, {"text": "10 boats", "answer_start": 38}]
    assert first.context[38:40] == "10" and not first.is_impossible
    assert examples[2].title == ""
    assert examples[4].is_impossible and examples[4].answers == []


def test_read_squad_articles_slice(tmp_path):
    path = write(tmp_path, squad_json(5))
    assert [e.id for e in read_squad(path, slice(0, 2))] == ["q0-0", "q0-1", "q1-0", "q1-1"]
    assert [e.id for e in read_squad(path, slice(3, None))] == ["q3-0", "q3-1", "q4-0", "q4-1"]
    assert [e.title for e in read_squad(path, [4, 1])][::2] == ["T4", "T1"]
    assert read_squad(path, slice(9, None)) == []
    with pytest.raises(KbertError, match="article index 7 out of range"):
        read_squad(path, [7])


def test_read_squad_slice_only_checks_the_chosen_articles(tmp_path):
    values = squad_json(3)
    values["data"][2]["paragraphs"][0]["context"] = 5
    path = write(tmp_path, values)
    assert len(read_squad(path, slice(0, 2))) == 4
    with pytest.raises(DataError, match=r"data\[2\]\.paragraphs\[0\]\.context: expected a string, got int"):
        read_squad(path, slice(2, None))


def _set(values, keys, value):
    for key in keys[:-1]:
        values = values[key]
    if value is KeyError:
        del values[keys[-1]]
    else:
        values[keys[-1]] = value


QA = ["data", 1, "paragraphs", 0, "qas", 1]


@pytest.mark.parametrize("keys, value, message", [
    (QA + ["answers", 0, "answer_start"], "40",
     "data[1].paragraphs[0].qas[1].answers[0].answer_start: expected an integer, got str"),
    (QA + ["answers", 1, "answer_start"], True,
     "data[1].paragraphs[0].qas[1].answers[1].answer_start: expected an integer, got bool"),
    (QA + ["answers", 0, "answer_start"], 500,
     "data[1].paragraphs[0].qas[1].answers[0].answer_start: 500 is outside the context (length 47)"),
    (QA + ["answers", 0, "answer_start"], -1,
     "data[1].paragraphs[0].qas[1].answers[0].answer_start: -1 is outside the context"),
    (QA + ["answers", 0, "text"], KeyError, "data[1].paragraphs[0].qas[1].answers[0]: missing field 'text'"),
    (QA + ["answers", 0], "Nile", "data[1].paragraphs[0].qas[1].answers[0]: expected an object, got str"),
    (QA + ["id"], KeyError, "data[1].paragraphs[0].qas[1]: missing field 'id'"),
    (QA + ["id"], "q0-0", "data[1].paragraphs[0].qas[1].id: duplicate id 'q0-0' (first at data[0].paragraphs[0].qas[0])"),
    (QA + ["question"], None, "data[1].paragraphs[0].qas[1].question: expected a string, got null"),
    (QA + ["is_impossible"], "no", "data[1].paragraphs[0].qas[1].is_impossible: expected true or false, got str"),
    (QA + ["answers"], {}, "data[1].paragraphs[0].qas[1].answers: expected a list, got object"),
    (["data", 1, "paragraphs", 0, "context"], KeyError, "data[1].paragraphs[0]: missing field 'context'"),
    (["data", 1, "paragraphs", 0, "qas"], "x", "data[1].paragraphs[0].qas: expected a list, got str"),
    (["data", 1, "paragraphs"], KeyError, "data[1]: missing field 'paragraphs'"),
    (["data", 1, "title"], 3, "data[1].title: expected a string, got int"),
    (["data", 0], [], "data[0]: expected an object, got list"),
    (["data"], KeyError, "top level: missing field 'data'"),
    (["data"], {"a": 1}, "data: expected a list, got object"),
])
def test_read_squad_errors_name_the_json_path(tmp_path, keys, value, message):
    values = squad_json(2)
    _set(values, keys, value)
    path = write(tmp_path, values)
    with pytest.raises(DataError) as error:
        read_squad(path)
    assert str(error.value) == f"{path}: {message}" or str(error.value).startswith(f"{path}: {message}")
    assert "\n" not in str(error.value)


def test_read_squad_bad_files(tmp_path):
    with pytest.raises(DataError, match=r"dev\.json:3: invalid JSON"):
        read_squad(write(tmp_path, '{"data": [\n  {"title": "x",\n   "paragraphs": [}\n]}'))
    with pytest.raises(DataError, match="expected a JSON object"):
        read_squad(write(tmp_path, "[1, 2]", "list.json"))
    with pytest.raises(DataError, match="file not found"):
        read_squad(tmp_path / "missing.json")
    with pytest.raises(DataError, match="file is empty"):
        read_squad(write(tmp_path, "", "empty.json"))


# --- encode_squad --------------------------------------------------------------------


UNICODE_CONTEXT = (
    "Zoë’s café — 😀 naïve 日本語 text: the answer is Ünïcode Straße, said she. "
    "Ééé 👍🏽 and more after it."
)


def test_encode_layout_and_unicode_offsets(tok):
    ex = example(UNICODE_CONTEXT, "Ünïcode Straße", question="Qué respuesta, señor?")
    features = encode_squad([ex], tok, seq_len=64)
    assert isinstance(features, SquadFeatures) and len(features) == 1 and features.skipped == []
    for key in ("token_ids", "segment_ids", "padding_mask", "token_char_start", "token_char_end"):
        assert getattr(features, key).dtype == np.int32 and getattr(features, key).shape == (1, 64)
    assert features.max_context.dtype == bool
    assert features.start_positions.dtype == np.int32 and features.example_index.tolist() == [0]

    query = tok.tokenize(ex.question).numpy().tolist()
    context, begin, end = (t.numpy() for t in tok.tokenize_with_offsets(UNICODE_CONTEXT.encode()))
    ids = features.token_ids[0]
    n_query, n_context = len(query), len(context)
    stop = n_query + n_context + 3
    assert ids[:stop].tolist() == [tok.cls_id] + query + [tok.sep_id] + context.tolist() + [tok.sep_id]
    assert (ids[stop:] == tok.pad_id).all()
    assert features.segment_ids[0].tolist() == [0] * (n_query + 2) + [1] * (n_context + 1) + [0] * (64 - stop)
    assert features.padding_mask[0].tolist() == [1] * stop + [0] * (64 - stop)

    offset = n_query + 2
    starts, ends = features.token_char_start[0], features.token_char_end[0]
    assert (starts[:offset] == -1).all() and (starts[stop - 1:] == -1).all() and (ends[stop - 1:] == -1).all()
    assert features.max_context[0].tolist() == [False] * offset + [True] * n_context + [False] * (64 - stop + 1)
    # Character offsets: each token's text, re-encoded, is the token's byte range.
    raw = UNICODE_CONTEXT.encode()
    for j in range(n_context):
        piece = UNICODE_CONTEXT[starts[offset + j]:ends[offset + j]]
        assert piece.encode() == raw[begin[j]:end[j]]
    assert tok.convert_ids_to_tokens(ids[offset + 5:offset + 10]) == ["[UNK]", "naive", "日", "本", "語"]
    assert [UNICODE_CONTEXT[starts[offset + j]:ends[offset + j]] for j in (5, 6, 9)] == ["😀", "naïve", "語"]

    s, e = features.start_positions[0], features.end_positions[0]
    assert UNICODE_CONTEXT[starts[s]:ends[e]] == "Ünïcode Straße"
    assert tok.convert_ids_to_tokens(ids[s:e + 1]) == ["unicode", "st", "##raße"]


def test_char_offsets_are_python_string_indices(tok):
    """One byte->character mapping, the tokenizer's in-graph one: the Python
    path's offsets are its output, and they index the Python string (also
    past lone surrogates, which JSON files can hold)."""
    texts = [UNICODE_CONTEXT, "a\ud83db c 😀 d\ud800", "x\u0301y \u01c4 \ufb01ne  日本語", ""]
    raw = np.array([t.encode("utf-8", "surrogatepass") for t in texts], dtype=object)
    _, begin, end = tok.tokenize_with_offsets(raw)
    _, char_begin, char_end = tok.tokenize_with_char_offsets(raw)
    for text, data, b, e, cb, ce in zip(texts, raw, begin.to_list(), end.to_list(), char_begin.to_list(),
                                        char_end.to_list()):
        assert cb == [len(data[:x].decode("utf-8", "surrogatepass")) for x in b]
        assert ce == [len(data[:x].decode("utf-8", "surrogatepass")) for x in e]
    # Dense offsets, padding (-1) and offsets past the end.
    got = tok.char_offsets(["Zoë x", "ab"], [[0, 4, 5, -1], [1, 2, 9, -1]]).numpy().tolist()
    assert got == [[0, 3, 4, -1], [1, 2, 2, -1]]
    # encode_squad's character ranges are exactly these.
    examples = [example(t, None, qid=str(i)) for i, t in enumerate(texts)]
    features = encode_squad(examples, tok, seq_len=64, training=False)
    for i, (cb, ce) in enumerate(zip(char_begin.to_list(), char_end.to_list())):
        rows = features.example_index == i
        starts = features.token_char_start[rows]
        assert starts[starts >= 0].tolist() == cb[:len(starts[starts >= 0])]
        ends = features.token_char_end[rows]
        assert ends[ends >= 0].tolist() == ce[:len(ends[ends >= 0])]


def test_encode_truncates_the_question(tok):
    question = " ".join(["river"] * 20)
    features = encode_squad([example("The Nile.", "Nile", question)], tok, seq_len=32, max_query_length=5)
    assert features.token_ids[0, :8].tolist() == [tok.cls_id] + [tok.tokenize("river").numpy()[0]] * 5 + [
        tok.sep_id, tok.tokenize("the").numpy()[0]]
    assert features.segment_ids[0, 6:8].tolist() == [0, 1]


def test_encode_argument_checks(tok):
    ex = [example("The Nile.", "Nile")]
    long = [example("The Nile.", "Nile", question="river " * 10)]
    with pytest.raises(KbertError, match="question 'q' has 8 tokens .* use max_query_length <= 7"):
        encode_squad(long, tok, seq_len=11, max_query_length=8)
    assert len(encode_squad(long, tok, seq_len=12, max_query_length=8)) == 3  # the / nile / .
    with pytest.raises(KbertError, match="doc_stride: expected an integer >= 1"):
        encode_squad(ex, tok, doc_stride=0)
    with pytest.raises(KbertError, match="seq_len: expected an integer >= 4, got 3.5"):
        encode_squad(ex, tok, seq_len=3.5)


WORDS = ("alpha beta gamma delta river mountain house garden table window city music "
         "water stone light paper green black white north south winter summer night").split()


def long_context(n=70):
    return " ".join(WORDS[i % len(WORDS)] for i in range(n)) + "."


def google_windows(num_tokens, window, stride):
    """Google's doc-span loop, verbatim."""
    spans = []
    start = 0
    while start < num_tokens:
        length = min(num_tokens - start, window)
        spans.append((start, length))
        if start + length == num_tokens:
            break
        start += min(length, stride)
    return spans


def google_is_max_context(spans, cur, position):
    best_score, best = None, None
    for index, (start, length) in enumerate(spans):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_score, best = score, index
    return cur == best


@pytest.mark.parametrize("seq_len, doc_stride", [(32, 8), (24, 5), (40, 30), (20, 100)])
def test_windows_positions_and_max_context(tok, seq_len, doc_stride):
    context = long_context()
    answer = "house garden table"
    at = context.index(answer, 200)  # the 2nd occurrence, mid-context
    ex = example(context, answer, question="Which three things?", at=at)
    features = encode_squad([ex], tok, seq_len=seq_len, doc_stride=doc_stride)
    _, begin, end = (t.numpy() for t in tok.tokenize_with_offsets(context))  # ASCII: bytes are chars
    n_query = len(tok.tokenize(ex.question).numpy())
    spans = google_windows(len(begin), seq_len - n_query - 3, doc_stride)
    assert len(features) == len(spans) > 1
    answer_tokens = (int(np.searchsorted(begin, at)), int(np.searchsorted(end, at + len(answer))))
    marked = np.zeros(len(begin), int)
    hits = 0
    for w, (start, length) in enumerate(spans):
        context_cols = np.flatnonzero(features.token_char_start[w] >= 0)
        assert context_cols.tolist() == list(range(n_query + 2, n_query + 2 + length))
        assert features.token_char_start[w, context_cols].tolist() == begin[start:start + length].tolist()
        assert features.token_char_end[w, context_cols].tolist() == end[start:start + length].tolist()
        expected = [google_is_max_context(spans, w, start + j) for j in range(length)]
        assert features.max_context[w, context_cols].tolist() == expected
        marked[start:start + length] += features.max_context[w, context_cols]
        s, e = features.start_positions[w], features.end_positions[w]
        if start <= answer_tokens[0] and answer_tokens[1] < start + length:
            hits += 1
            assert context[features.token_char_start[w, s]:features.token_char_end[w, e]] == answer
            assert s - (n_query + 2) + start == answer_tokens[0]
        else:
            assert s == e == 0
    assert (marked == 1).all()
    assert hits >= 1


def test_impossible_unlocatable_and_relocated_answers(tok):
    context = "The Nile is a river. The Nile is long."
    examples = [
        example(context, None, impossible=True, qid="impossible"),
        example(context, "Amazon", at=4, qid="missing"),
        example(context, "Nile", at=6, qid="moved"),  # nearest occurrence: 4, not 25
        example(context, " long. ", at=29, qid="spaces"),  # found with whitespace stripped
        example("", None, impossible=True, qid="empty"),
        example(context, None, qid="unlabeled"),  # no answers, not impossible
    ]
    train = encode_squad(examples, tok, seq_len=32)
    assert train.skipped == [1, 5]
    assert train.example_index.tolist() == [0, 2, 3, 4]
    cls = train.start_positions[[0, 3]].tolist() + train.end_positions[[0, 3]].tolist()
    assert cls == [0, 0, 0, 0]
    starts, ends = train.token_char_start, train.token_char_end
    assert (starts[1, train.start_positions[1]], ends[1, train.end_positions[1]]) == (4, 8)
    assert context[starts[2, train.start_positions[2]]:ends[2, train.end_positions[2]]] == "long."
    # An empty context gets one window with no context tokens.
    assert train.padding_mask[3].sum() == len(tok.tokenize("What is it?").numpy()) + 3
    assert not train.max_context[3].any()

    evaluation = encode_squad(examples, tok, seq_len=32, training=False)
    assert evaluation.skipped == [] and evaluation.example_index.tolist() == [0, 1, 2, 3, 4, 5]
    assert evaluation.start_positions[[1, 5]].tolist() == evaluation.end_positions[[1, 5]].tolist() == [0, 0]
    texts = prediction_texts(postprocess(examples, evaluation, *[np.zeros((6, 32))] * 2))
    assert list(texts) == [e.id for e in examples] and texts["empty"] == ""


def test_encode_nothing(tok):
    features = encode_squad([], tok, seq_len=16)
    assert len(features) == 0 and features.token_ids.shape == (0, 16) and features.start_positions.shape == (0,)
    assert postprocess([], features, np.zeros((0, 16)), np.zeros((0, 16))) == {}


# --- postprocess -----------------------------------------------------------------------


def brute_force(ex, features, start_logits, end_logits, max_answer_length):
    """Best allowed span over all windows, by plain loops."""
    best = (-np.inf, None)
    for f in np.flatnonzero(features.example_index == features.example_index[0]):
        for s in range(features.seq_len):
            if not features.max_context[f, s]:
                continue
            for e in range(s, min(s + max_answer_length, features.seq_len)):
                if features.token_char_start[f, e] < 0:
                    continue
                score = start_logits[f, s] + end_logits[f, e]
                if score > best[0]:
                    best = (score, ex.context[features.token_char_start[f, s]:features.token_char_end[f, e]])
    return best


def test_postprocess_picks_the_best_span(tok):
    ex = example(UNICODE_CONTEXT, "Ünïcode Straße")
    features = encode_squad([ex], tok, seq_len=64)
    start = np.zeros((1, 64), np.float32)
    end = np.zeros((1, 64), np.float32)
    s, e = features.start_positions[0], features.end_positions[0]
    start[0, s], end[0, e] = 5.0, 4.0
    start[0, 0] = end[0, 0] = 100.0  # [CLS] is no answer in v1
    start[0, 2] = 50.0  # a question token
    answer = postprocess([ex], features, start, end)["q"]
    assert answer["text"] == "Ünïcode Straße" and answer["score"] == pytest.approx(9.0)
    assert UNICODE_CONTEXT[answer["start"]:answer["end"]] == answer["text"]
    assert answer["null_score"] == pytest.approx(200.0)
    n_best = answer["n_best"]
    assert len(n_best) == 20 and n_best[0]["text"] == answer["text"]
    assert len({c["text"] for c in n_best}) == 20
    assert [c["score"] for c in n_best] == sorted((c["score"] for c in n_best), reverse=True)
    assert sum(c["probability"] for c in n_best) == pytest.approx(1.0)
    assert len(postprocess([ex], features, start, end, n_best=3)["q"]["n_best"]) == 3
    assert prediction_texts(postprocess([ex], features, start, end)) == {"q": "Ünïcode Straße"}


def test_postprocess_max_answer_length(tok):
    ex = example(UNICODE_CONTEXT, "Ünïcode Straße")
    features = encode_squad([ex], tok, seq_len=64)
    s = features.start_positions[0]
    start = np.zeros((1, 64), np.float32)
    end = np.zeros((1, 64), np.float32)
    start[0, s] = 5.0
    end[0, s + 4] = 4.0  # "Ünïcode Straße, said": 5 tokens
    end[0, s + 1] = 1.0  # "Ünïcode Straße" needs 3
    got = lambda n: postprocess([ex], features, start, end, max_answer_length=n)["q"]["text"]
    assert got(5) == "Ünïcode Straße, said"
    assert got(4) == "Ünïcode St"
    assert got(1) == "Ünïcode"
    with pytest.raises(KbertError, match="max_answer_length"):
        got(0)
    with pytest.raises(KbertError, match=r"start_logits: expected shape \(1, 64\)"):
        postprocess([ex], features, start[:, :10], end)


def test_postprocess_respects_max_context(tok):
    context = long_context()
    ex = example(context, "house garden table", at=context.index("house garden table", 200))
    features = encode_squad([ex], tok, seq_len=32, doc_stride=8)
    # A token that is in windows 0 and 1 but has its max context in window 1.
    token = np.flatnonzero(features.max_context[1])[0]
    char = features.token_char_start[1, token]
    in_first = np.flatnonzero(features.token_char_start[0] == char)[0]
    assert not features.max_context[0, in_first]
    start = np.zeros(features.token_ids.shape, np.float32)
    end = np.zeros(features.token_ids.shape, np.float32)
    start[0, in_first] = 9.0
    start[1, token] = 3.0
    end[:, :] = np.where(features.token_char_start >= 0, 0.0, 50.0)
    answer = postprocess([ex], features, start, end, n_best=5)["q"]
    assert answer["start"] == char and answer["score"] == pytest.approx(3.0)


def test_postprocess_matches_brute_force_on_random_logits(tok):
    context = long_context(120)
    examples = [example(context, "house garden table", qid=f"q{i}", question="Which?" * (i + 1))
                for i in range(3)]
    features = encode_squad(examples, tok, seq_len=40, doc_stride=12)
    rng = np.random.default_rng(0)
    start = rng.normal(size=features.token_ids.shape).astype(np.float32)
    end = rng.normal(size=features.token_ids.shape).astype(np.float32)
    answers = postprocess(examples, features, start, end, max_answer_length=4)
    assert set(answers) == {"q0", "q1", "q2"}
    for i, ex in enumerate(examples):
        rows = features.example_index == i
        score, text = brute_force(ex, _subset(features, rows), start[rows], end[rows], 4)
        assert answers[ex.id]["text"] == text and answers[ex.id]["score"] == pytest.approx(score)


def _subset(features, rows):
    return SquadFeatures(**{k: getattr(features, k)[rows] for k in SquadFeatures.FIELDS})


def test_postprocess_version_2_null_threshold(tok):
    context = long_context()
    ex = example(context, "house garden table", at=context.index("house garden table", 200))
    features = encode_squad([ex], tok, seq_len=32, doc_stride=8)
    rows = np.arange(len(features))
    w = int(np.flatnonzero(features.max_context[rows, features.start_positions])[0])
    start = np.zeros(features.token_ids.shape, np.float32)
    end = np.zeros(features.token_ids.shape, np.float32)
    start[w, features.start_positions[w]] = 2.0
    end[w, features.end_positions[w]] = 2.0  # best span: 4
    start[:, 0] = 3.0
    end[:, 0] = 3.0
    start[len(features) - 1, 0] = 2.5  # null score: min over windows = 5.5
    run = lambda **kw: postprocess([ex], features, start, end, version_2=True, **kw)["q"]
    answer = run()
    assert answer["text"] == "" and (answer["start"], answer["end"]) == (-1, -1)
    assert answer["score"] == answer["null_score"] == pytest.approx(5.5)
    assert answer["n_best"][0]["text"] == "" and answer["n_best"][1]["text"] == "house garden table"
    assert run(null_threshold=1.4)["text"] == ""
    assert run(null_threshold=1.5)["text"] == "house garden table"  # "" needs a margin above it
    answer = run(null_threshold=1.6)
    assert answer["text"] == "house garden table" and answer["score"] == pytest.approx(4.0)
    assert any(c["text"] == "" for c in answer["n_best"])
    # Version 1 never predicts "".
    assert postprocess([ex], features, start, end)["q"]["text"] == "house garden table"


# --- real data -------------------------------------------------------------------------


def normalize_answer(text):
    """The official SQuAD v1.1 evaluation's normalization."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def test_oracle_logits_reproduce_the_gold_answers(tok):
    """One-hot logits at the training positions must give back the answers."""
    examples = read_squad(data_path("squad", "dev-v1.1.json"), slice(38, None))
    assert len(examples) == 1988
    begin = time.perf_counter()
    features = encode_squad(examples, tok, seq_len=384, doc_stride=128, training=True)
    seconds = time.perf_counter() - begin
    assert features.skipped == []
    found = np.zeros(len(examples), bool)
    found[features.example_index[features.start_positions > 0]] = True
    start = np.zeros(features.token_ids.shape, np.float32)
    end = np.zeros(features.token_ids.shape, np.float32)
    rows = np.arange(len(features))
    start[rows, features.start_positions] = 1.0
    end[rows, features.end_positions] = 1.0
    texts = prediction_texts(postprocess(examples, features, start, end))
    exact = [max(normalize_answer(texts[e.id]) == normalize_answer(a["text"]) for a in e.answers)
             for e in examples]
    em = float(np.mean(exact))
    print(f"\noracle EM {em:.4f} ({sum(exact)}/{len(exact)}), {len(features)} windows, "
          f"{int((~found).sum())} answers outside every window, encode {seconds:.2f} s")
    assert em > 0.99
    assert (~found).sum() <= 5
    assert len(features) >= len(examples)
