import re
import time

import numpy as np
import pytest

from conftest import data_path
from kbert.data import ner
from kbert.data.ner import (
    Sentence,
    convert_tags,
    decode_ner,
    detect_scheme,
    encode_ner,
    label_list,
    read_conll,
)
from kbert.data.words import entities, split_words
from kbert.errors import DataError, KbertError
from kbert.metrics import entity_spans


def write(tmp_path, text, name="data.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return str(path)


def ids_of(labels):
    return {t: i for i, t in enumerate(labels)}


# --- reading -------------------------------------------------------------------

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER


-DOCSTART- -X- -X- O

BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O"""


def test_read_conll(tmp_path):
    path = write(tmp_path, CONLL)
    sentences = read_conll(path)
    assert sentences == [
        Sentence(["EU", "rejects", "German"], ["B-ORG", "O", "B-MISC"], 3, path),
        Sentence(["Peter", "Blackburn"], ["B-PER", "I-PER"], 7, path),
        Sentence(["BRUSSELS", "1996-08-22"], ["B-LOC", "O"], 13, path),
    ]
    # Other columns: POS tags, and words from the second column.
    assert read_conll(path, tag_column=1)[0].tags == ["NNP", "VBZ", "JJ"]
    assert read_conll(path, tag_column=0, word_column=2)[1] == Sentence(
        ["B-NP", "I-NP"], ["Peter", "Blackburn"], 7, path
    )
    assert label_list(sentences) == ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-PER"]
    assert label_list([Sentence(["a"], ["I-X"], 1, "x"), Sentence(["b"], ["B-X"], 2, "x")]) == [
        "B-X",
        "I-X",
    ]


def test_read_conll_crlf_and_tabs(tmp_path):
    path = write(tmp_path, "EU\tB-ORG\r\nrejects\tO\r\n\r\n")
    assert read_conll(path) == [Sentence(["EU", "rejects"], ["B-ORG", "O"], 1, path)]


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        ("EU B-ORG\nrejects\n", {}, ":2: expected at least 2 columns, got 1"),
        ("EU NNP B-ORG\n\nx y\n", {"tag_column": 2}, ":3: expected at least 3 columns, got 2"),
        ("a b c\n", {"tag_column": -3}, ":1: expected at least 4 columns, got 3"),
        ("a b c d\n", {"word_column": 2, "tag_column": -2}, ":1: word column 2 and tag column -2"),
        ("-DOCSTART- -X- -X- O\n\n\n", {}, ": no sentences found"),
        ("\n\n", {}, ": no sentences found"),
        (b"EU B-ORG\n\xff x\n", {}, ":2: not valid UTF-8"),
        (b"", {}, ": file is empty"),
    ],
)
def test_read_conll_errors(tmp_path, text, kwargs, message):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match="^" + re.escape(path + message)):
        read_conll(path, **kwargs)


def test_read_conll_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_conll(tmp_path / "missing.txt")
    path = write(tmp_path, "a b\n")
    with pytest.raises(KbertError, match="both 0"):
        read_conll(path, tag_column=0)
    with pytest.raises(KbertError, match="tag_column"):
        read_conll(path, tag_column="1")


def test_unknown_tag_names_file_and_line(tmp_path, tok):
    path = write(tmp_path, CONLL)
    sentences = read_conll(path)
    labels = [t for t in label_list(sentences) if t != "I-PER"]
    with pytest.raises(DataError, match="^" + re.escape(path) + ":8: unknown tag 'I-PER'"):
        encode_ner(sentences, tok, ids_of(labels))
    bad = [Sentence(["a", "b"], ["O"], 4, "x.txt")]
    with pytest.raises(DataError, match=r"^x.txt:4: 2 words but 1 tags"):
        encode_ner(bad, tok, {"O": 0})


# --- schemes -------------------------------------------------------------------

# The same entities in the three schemes: PER, PER touching PER, O, LOC+LOC, MISC, ORG touching LOC.
IOB1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-LOC", "I-MISC", "I-ORG", "I-LOC", "O"]
IOB2 = ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "I-LOC", "B-MISC", "B-ORG", "B-LOC", "O"]
BIOES = ["B-PER", "E-PER", "S-PER", "O", "B-LOC", "E-LOC", "S-MISC", "S-ORG", "S-LOC", "O"]
SPANS = [("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 6), ("MISC", 6, 7), ("ORG", 7, 8), ("LOC", 8, 9)]


def test_detect_scheme():
    assert detect_scheme([IOB1]) == "IOB1"
    assert detect_scheme([IOB2]) == "IOB2"
    assert detect_scheme([IOB2, BIOES]) == "BIOES"
    assert detect_scheme([["O", "O"], []]) == "IOB2"
    assert detect_scheme([["I-PER"], ["B-PER", "I-PER"]]) == "IOB2"  # mixed: B- starts seen
    assert detect_scheme([["I-PER", "B-PER"], ["I-LOC"]]) == "IOB1"
    with pytest.raises(KbertError, match=r"sequence 1, tag 1: 'PER'"):
        detect_scheme([["O"], ["O", "PER"]])
    with pytest.raises(DataError, match=r"^f.txt:11: tag 'X-PER'"):
        detect_scheme([Sentence(["a", "b"], ["O", "X-PER"], 10, "f.txt")])


@pytest.mark.parametrize("tags", [IOB1, IOB2, BIOES])
def test_entity_spans_same_for_all_schemes(tags):
    assert entity_spans(tags) == SPANS


def test_entity_spans_seqeval_semantics():
    # Stray I-/E- starts, type changes, and a chunk running to the end.
    tags = ["I-PER", "E-PER", "I-PER", "O", "E-LOC", "B-LOC", "I-ORG", "I-ORG"]
    assert entity_spans(tags) == [
        ("PER", 0, 2),
        ("PER", 2, 3),
        ("LOC", 4, 5),
        ("LOC", 5, 6),
        ("ORG", 6, 8),
    ]
    assert entity_spans([]) == []
    assert entity_spans(["O", "O"]) == []


def test_convert_tags_round_trips():
    schemes = {"IOB1": IOB1, "IOB2": IOB2, "BIOES": BIOES}
    for source, tags in schemes.items():
        for target, expected in schemes.items():
            assert convert_tags(tags, source, target) == expected, (source, target)
    assert convert_tags(IOB2, "iob2", "iobes") == BIOES
    # An IOB2 sequence with a stray I- start is read as an entity start.
    assert convert_tags(["O", "I-PER", "I-PER"], "IOB2", "BIOES") == ["O", "B-PER", "E-PER"]
    assert convert_tags([], "IOB1", "IOB2") == []


def test_convert_tags_errors():
    with pytest.raises(KbertError, match="unknown tag scheme 'BILOU'"):
        convert_tags(IOB2, "BILOU", "IOB2")
    with pytest.raises(KbertError, match=r"tag 2: 'S-PER' is not a valid IOB2 tag"):
        convert_tags(["O", "B-PER", "S-PER"], "IOB2", "BIOES")
    with pytest.raises(KbertError, match=r"tag 0: 'PER' is not a valid BIOES tag"):
        convert_tags(["PER"], "BIOES", "IOB2")


# --- encoding --------------------------------------------------------------------


def test_alignment_hand_example(tok):
    words = ["Johanson", "lives", "in", "Washington", "."]
    sentence = Sentence(words, ["B-PER", "O", "O", "B-LOC", "O"], 1, "x")
    labels = ["O", "B-LOC", "B-PER"]
    f = encode_ner([sentence], tok, ids_of(labels), seq_len=12)
    assert tok.convert_ids_to_tokens(f["token_ids"][0, :8]) == [
        "[CLS]", "johan", "##son", "lives", "in", "washington", ".", "[SEP]",
    ]
    assert f["token_ids"][0].tolist() == tok.encode(" ".join(words)) + [tok.pad_id] * 4
    assert f["padding_mask"][0].tolist() == [1] * 8 + [0] * 4
    assert f["segment_ids"].tolist() == [[0] * 12]
    assert f["labels"][0].tolist() == [0, 2, 0, 0, 0, 1, 0] + [0] * 5
    assert f["label_weights"][0].tolist() == [0, 1, 0, 1, 1, 1, 1] + [0] * 5
    assert f["word_index"][0].tolist() == [-1, 0, -1, 1, 2, 3, 4] + [-1] * 5
    assert f["sentence_index"].tolist() == [0]
    for key, dtype in [("token_ids", np.int32), ("labels", np.int32), ("label_weights", np.float32)]:
        assert f[key].dtype == dtype
    assert decode_ner(f["labels"], f, [sentence], labels) == [sentence.tags]


def test_word_without_pieces_gets_unk(tok):
    sentence = Sentence(["a", "\u200b", "b"], ["O", "B-X", "O"], 1, "x")
    f = encode_ner([sentence], tok, {"O": 0, "B-X": 1}, seq_len=8)
    assert tok.convert_ids_to_tokens(f["token_ids"][0, :5]) == ["[CLS]", "a", "[UNK]", "b", "[SEP]"]
    assert f["labels"][0, :5].tolist() == [0, 0, 1, 0, 0]


def test_untagged_sentences(tok):
    sentences = [Sentence(["Hello", "world"], None, 1, "text"), Sentence([], None, 2, "text")]
    f = encode_ner(sentences, tok, None, seq_len=8)
    assert f["sentence_index"].tolist() == [0]  # no row for the empty sentence
    assert f["labels"].max() == 0 and f["label_weights"][0].sum() == 2
    assert decode_ner(f["labels"], f, sentences, ["O"]) == [["O", "O"], []]


WORDS = (
    "The supercalifragilisticexpialidocious Johanson family , who moved from "
    "Washington to Tokyo in 1996 , runs a bakery ; its croissants are "
    "extraordinarily popular with tourists ."
).split()


def long_sentence():
    tags = ["O", "B-MISC", "B-PER", "O", "O", "O", "O", "O", "B-LOC", "O", "B-LOC"]
    tags += ["O"] * (len(WORDS) - len(tags))
    return Sentence(WORDS, tags, 5, "long.txt")


@pytest.mark.parametrize("seq_len, stride", [(8, None), (8, 0), (8, 5), (3, 0), (16, 4)])
def test_windows(tok, seq_len, stride):
    short = Sentence(["Hi", "there"], ["O", "B-PER"], 1, "x")
    sentences = [short, long_sentence(), short]
    labels = label_list(sentences)
    f = encode_ner(sentences, tok, ids_of(labels), seq_len=seq_len, stride=stride)
    budget = seq_len - 2
    stride = seq_len // 4 if stride is None else stride
    word_pieces = [tok.tokenize(w).numpy().tolist()[:budget] for w in WORDS]
    rows = np.nonzero(f["sentence_index"] == 1)[0]
    assert (np.diff(f["sentence_index"]) >= 0).all() and set(f["sentence_index"]) == {0, 1, 2}
    assert len(rows) > 2

    owned = []
    previous = None
    for r in rows:
        length = f["padding_mask"][r].sum()
        assert 3 <= length <= seq_len and f["padding_mask"][r, :length].all()
        ids = f["token_ids"][r, :length].tolist()
        assert ids[0] == tok.cls_id and ids[-1] == tok.sep_id
        mine = f["word_index"][r][f["word_index"][r] >= 0]
        assert len(mine) >= 1
        # The window is the whole pieces of a run of consecutive words
        # (with its owned words: a "," alone could be either comma).
        found = [
            (a, e)
            for a in range(mine.min() + 1)
            for e in range(mine.max() + 1, len(WORDS) + 1)
            if sum(word_pieces[a:e], []) == ids[1:-1]
        ]
        assert len(found) == 1, ids
        a, e = found[0]
        if previous is not None:
            assert a > previous[0] and e > previous[1]  # moves on
            overlap = sum(len(p) for p in word_pieces[a : previous[1]])
            assert overlap <= stride
        previous = (a, e)
        positions = np.nonzero(f["word_index"][r] >= 0)[0]
        assert (f["label_weights"][r] == (f["word_index"][r] >= 0)).all()
        for pos in positions:
            w = f["word_index"][r, pos]
            assert a <= w < e
            assert f["token_ids"][r, pos] == word_pieces[w][0]  # first piece
            assert f["labels"][r, pos] == labels.index(sentences[1].tags[w])
            owned.append(w)
    assert sorted(owned) == list(range(len(WORDS)))  # each word owned exactly once
    assert owned == sorted(owned)  # windows own consecutive runs, in order
    gold = [s.tags for s in sentences]
    assert decode_ner(f["labels"], f, sentences, labels) == gold


def test_window_planner_invariants():
    rng = np.random.default_rng(0)
    for _ in range(300):
        budget = int(rng.integers(1, 12))
        stride = int(rng.integers(0, budget))
        counts = rng.integers(1, budget + 1, int(rng.integers(1, 40))).tolist()
        windows = ner._windows(counts, budget, stride)
        assert windows[0][0] == 0 and windows[0][2] == 0 and windows[-1][1] == len(counts)
        for k, (a, e, own_a, own_e) in enumerate(windows):
            assert sum(counts[a:e]) <= budget
            assert a <= own_a < own_e <= e
            if k:
                pa, pe, _, p_own_e = windows[k - 1]
                assert own_a == p_own_e and a > pa and e > pe and a <= pe
                assert sum(counts[a:pe]) <= stride
                # The overlap's words are shared half and half.
                assert own_a == max(windows[k - 1][2] + 1, (a + pe + 1) // 2)
        assert windows[-1][3] == len(counts)


def test_encode_argument_errors(tok):
    s = [Sentence(["a"], ["O"], 1, "x")]
    with pytest.raises(KbertError, match="seq_len"):
        encode_ner(s, tok, {"O": 0}, seq_len=2)
    with pytest.raises(KbertError, match=r"stride: expected an integer in \[0, 5\]"):
        encode_ner(s, tok, {"O": 0}, seq_len=8, stride=6)


def test_decode_errors(tok):
    sentences = [Sentence(["a", "b"], ["O", "B-X"], 1, "x")]
    f = encode_ner(sentences, tok, {"O": 0, "B-X": 1}, seq_len=6)
    with pytest.raises(KbertError, match="shape"):
        decode_ner(f["labels"][:, :4], f, sentences, ["O", "B-X"])
    with pytest.raises(KbertError, match=r"must be in \[0, 2\)"):
        decode_ner(f["labels"] + 5, f, sentences, ["O", "B-X"])
    with pytest.raises(KbertError, match="no prediction for sentence 1, word 0"):
        decode_ner(f["labels"], f, sentences + sentences, ["O", "B-X"])
    logits = np.eye(2)[f["labels"]]  # [n, seq_len, 2]
    assert decode_ner(logits, f, sentences, ["O", "B-X"]) == [["O", "B-X"]]


def test_predict_path_end_to_end(tok):
    text = "Angela Merkel met Emmanuel Macron in Berlin."
    words = split_words(text)
    sentence = Sentence([w for w, _, _ in words], None, 1, "<text>")
    f = encode_ner([sentence], tok, None, seq_len=8, stride=2)  # forces windows
    labels = ["O", "B-LOC", "B-PER", "I-PER"]
    predicted = np.zeros_like(f["labels"])
    gold = ["B-PER", "I-PER", "O", "B-PER", "I-PER", "O", "B-LOC", "O"]
    for r, c in zip(*np.nonzero(f["word_index"] >= 0)):
        predicted[r, c] = labels.index(gold[f["word_index"][r, c]])
    (tags,) = decode_ner(predicted, f, [sentence], labels)
    assert tags == gold
    assert [(e["type"], e["text"]) for e in entities(words, tags, text)] == [
        ("PER", "Angela Merkel"),
        ("PER", "Emmanuel Macron"),
        ("LOC", "Berlin"),
    ]


# --- real data -------------------------------------------------------------------


def test_conll2003_valid(tok):
    path = data_path("conll2003", "valid.txt")
    began = time.perf_counter()
    sentences = read_conll(path)
    assert len(sentences) == 3250 and sum(len(s.words) for s in sentences) == 51362
    # This copy is the usual IOB2 conversion (the 2003 release was IOB1).
    assert detect_scheme(sentences) == "IOB2"
    iob1 = [Sentence(s.words, convert_tags(s.tags, "IOB2", "IOB1"), s.line, s.source) for s in sentences]
    assert detect_scheme(iob1) == "IOB1"
    for s, t in zip(sentences, iob1):
        assert convert_tags(t.tags, "IOB1", "IOB2") == s.tags
        assert convert_tags(convert_tags(s.tags, "IOB2", "BIOES"), "BIOES", "IOB2") == s.tags
    labels = label_list(sentences)
    assert labels == ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"]
    f = encode_ner(sentences, tok, ids_of(labels), seq_len=128)
    assert decode_ner(f["labels"], f, sentences, labels) == [s.tags for s in sentences]
    assert f["label_weights"].sum() == 51362
    windows = np.bincount(f["sentence_index"], minlength=len(sentences))
    print(
        f"\nconll2003 valid: {len(sentences)} sentences, {len(f['token_ids'])} rows at seq_len 128, "
        f"{(windows > 1).sum()} sentences in more than one window, "
        f"{time.perf_counter() - began:.2f} s"
    )
    assert (windows >= 1).all()
