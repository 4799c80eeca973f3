import os
import random
import signal
import threading
import time

import pytest
import tqdm
from click.testing import CliRunner

from kbert.errors import DataError, KbertError
from kbert.tokenization import SPECIAL_TOKENS, BertTokenizer, learn_vocab, load_vocab
from kbert.tokenization import learn

# Text on which naive normalisation goes wrong: accents, final sigma, dotted I,
# NFKC-only changes (ligature, superscript, fraction, ellipsis, full-width, ß),
# CJK, emoji with skin tone / ZWJ / variation selector, control and format
# characters, U+FFFD, no-break and ideographic spaces.
TRICKY = [
    "Café CAFÉ naïve Über résumé Ångström",
    "ΟΔΟΣ Σίσυφος İstanbul straße ﬁne ²½… ＡＢＣ１２３！",
    "中文字符測試 日本語のテキスト 한국어 텍스트",
    "emoji 👍🏽 👨\u200d👩\u200d👧 ❤\ufe0f smile 😀!",
    "tab\there\x07bell zero\u200bwidth\ufeffmark repl\ufffdchar \u00a0nbsp\u3000ideo",
]
# Characters newer than the Unicode tables of HF `tokenizers`' own normalizer
# and pre-tokenizer, which the trainer would therefore see differently from
# kbert's tokenizer: a format character (U+0890, dropped), a nonspacing mark
# (U+07FD, stripped with accents), punctuation (U+2E5D, U+061D, split off) and
# CJK ideographs (U+2B820, split off).
NEW_UNICODE = ["a\u0890b c\u07fdd e\u2e5df g\u061dh \U0002b820\U0002b821 ij"]

ENGLISH = [
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore, doesn't she?",
    "Elinor received her brother's congratulations on Tuesday.",
    "Prices rose 3.5% in 2017 -- the highest since 2008 (officials said).",
]


def write(path, data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def pseudo_words(n, seed=0):
    rng = random.Random(seed)
    return ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(n)]


@pytest.fixture
def rich_corpus(tmp_path):
    """Many distinct words, each seen 2-4 times: far more pieces than the sizes asked."""
    rng = random.Random(1)
    words = [w for w in pseudo_words(400) for _ in range(rng.randint(2, 4))]
    rng.shuffle(words)
    lines = [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
    return write(tmp_path / "rich.txt", "\n".join(lines) + "\n")


@pytest.mark.parametrize("size", [60, 150, 400])
def test_exact_size_with_reserved_tokens_first(rich_corpus, tmp_path, size):
    out = tmp_path / "vocab.txt"
    vocab = learn_vocab(rich_corpus, size, out=out, progress=False)
    assert len(vocab) == size
    assert vocab[:5] == list(SPECIAL_TOKENS)
    assert len(set(vocab)) == size
    assert load_vocab(out) == vocab
    assert out.read_text(encoding="utf-8") == "".join(t + "\n" for t in vocab)
    # Ids are stable: learning again gives the same file.
    assert learn_vocab(rich_corpus, size, progress=False) == vocab


def test_custom_reserved_tokens_first(rich_corpus):
    reserved = ["[PAD]", "[unused0]", "[CLS]", "[SEP]", "[UNK]", "[MASK]", "[unused1]"]
    vocab = learn_vocab(rich_corpus, 100, reserved_tokens=reserved, progress=False)
    assert vocab[:7] == reserved and len(vocab) == 100 and len(set(vocab)) == 100


def test_too_many_characters_keeps_the_most_frequent(tmp_path):
    # a and b are frequent, each Greek letter is seen once; punctuation needs
    # no "##" form. Room for 8 tokens: a, ##a, b, ##b, "!", then α, ##α (the
    # first of the tied rare letters), and one merge ("ab" and "ba" tie; the
    # tie is broken the same way every time).
    corpus = write(tmp_path / "c.txt", "ab ba ab! ba\n" * 50 + "α β γ δ ε ζ\n")
    vocab = learn_vocab(corpus, 5 + 8, progress=False)
    assert vocab == list(SPECIAL_TOKENS) + ["!", "a", "b", "α", "##a", "##b", "##α", "ab"]
    tok = BertTokenizer(vocab)
    assert [vocab[i] for i in tok.tokenize("ba βα!").numpy()] == ["b", "##a", "[UNK]", "!"]


def test_runs_out_of_pieces_on_a_tiny_corpus(tmp_path):
    corpus = write(tmp_path / "c.txt", "abc abd abc abd\n")
    vocab = learn_vocab(corpus, 1000, min_frequency=1, progress=False)
    # Only whole words are left to learn: nothing is padded or invented.
    assert len(vocab) < 1000
    assert {"abc", "abd", "a", "##b", "##c", "##d"} <= set(vocab)


@pytest.mark.parametrize("min_frequency", [1, 2, 3])
def test_min_frequency_honoured(tmp_path, min_frequency):
    rng = random.Random(2)
    words = pseudo_words(300, seed=3)
    counts = {w: rng.randint(1, 4) for w in words}
    text = [w for w, c in counts.items() for _ in range(c)]
    rng.shuffle(text)
    corpus = write(tmp_path / "c.txt", "\n".join(" ".join(text[i:i + 10]) for i in range(0, len(text), 10)))
    vocab = learn_vocab(corpus, 5000, min_frequency=min_frequency, progress=False)
    # Every piece longer than a character occurs at least min_frequency times.
    for token in vocab[5:]:
        piece = token[2:] if token.startswith("##") else token
        if len(piece) > 1:
            seen = sum(
                c * (w[1:].count(piece) if token.startswith("##") else w.startswith(piece))
                for w, c in counts.items()
            )
            assert seen >= min_frequency, (token, seen)
    whole = {w for w, c in counts.items() if c >= min_frequency}
    rare = {w for w, c in counts.items() if c < min_frequency}
    assert whole <= set(vocab)  # the size is ample: all frequent words are tokens
    assert not rare & set(vocab)


@pytest.mark.parametrize("min_frequency", [0, -1, 1.5, "2"])
def test_bad_min_frequency(rich_corpus, min_frequency):
    with pytest.raises(KbertError, match="min_frequency"):
        learn_vocab(rich_corpus, 100, min_frequency=min_frequency, progress=False)


@pytest.mark.parametrize("lowercase", [True, False])
def test_trainer_sees_the_words_the_tokenizer_sees(tmp_path, lowercase):
    lines = TRICKY + NEW_UNICODE + ENGLISH
    corpus = write(tmp_path / "c.txt", "\n".join(lines) + "\n")
    # min_frequency 1 and room to spare: every word of the corpus becomes a token.
    vocab = learn_vocab(corpus, 3000, lowercase=lowercase, min_frequency=1, progress=False)
    assert len(vocab) < 3000
    tok = BertTokenizer(vocab, lowercase=lowercase)
    words = set()
    for line, ids in zip(lines, tok.tokenize(lines).to_list()):
        tokens = [vocab[i] for i in ids]
        # Had the trainer normalized or split a word differently, the tokenizer
        # would need "##" pieces or [UNK] for it...
        assert "[UNK]" not in tokens and not any(t.startswith("##") for t in tokens), (line, tokens)
        words.update(tokens)
    # ... or the trainer would have learned pieces of words the tokenizer never sees.
    for token in vocab[5:]:
        if token.startswith("##") and len(token) > 3:
            assert any(token[2:] in w[1:] for w in words), token
        elif not token.startswith("##") and len(token) > 1:
            assert any(w.startswith(token) for w in words), token
    body = "".join(vocab[5:])
    for dropped in "\x07\u200b\u200d\ufeff\ufffd\u0890\t\u00a0\u3000 ":
        assert dropped not in body
    # Compatibility characters are kept as they are (no NFKC), as in HF.
    for kept in ["ﬁ", "²", "½", "…", "ß"]:
        assert kept in vocab
    assert "\u2e5d" in vocab and "\U0002b820" in vocab  # split off like punctuation / CJK
    if lowercase:
        assert {"cafe", "naive", "οδοσ", "straße", "ａｂｃ１２３"} <= set(vocab)
        assert "\u07fd" not in body and "\ufe0f" not in body
        assert not set("ÉéÜüÅ") & set(body)
    else:
        assert {"Café", "CAFÉ", "ΟΔΟΣ", "İstanbul", "ＡＢＣ１２３"} <= set(vocab)


@pytest.mark.parametrize("lowercase", [True, False])
def test_ids_agree_with_hf_bert_tokenizer_fast(tmp_path, lowercase):
    transformers = pytest.importorskip("transformers")
    rng = random.Random(4)
    lines = [rng.choice(TRICKY + ENGLISH) for _ in range(200)]
    corpus = write(tmp_path / "c.txt", "\n".join(lines) + "\n")
    folder = tmp_path / "hf"
    folder.mkdir()
    vocab = learn_vocab(corpus, 250, lowercase=lowercase, out=folder / "vocab.txt", progress=False)
    assert len(vocab) == 250
    # transformers 5 ignores a `vocab_file=` argument: load the folder.
    hf = transformers.BertTokenizerFast.from_pretrained(folder, do_lower_case=lowercase)
    tok = BertTokenizer(folder / "vocab.txt", lowercase=lowercase)
    # Seen lines, and unseen ones that need pieces and [UNK].
    texts = TRICKY + ENGLISH + ["Unseen words: zyzzyva, Ωmega ＸＹＺ 測 quickly shores.", "Ǆ ǅ ǆ ÀÉÎÕÜ"]
    ours = tok.tokenize(texts).to_list()
    theirs = hf(texts, add_special_tokens=False)["input_ids"]
    assert ours == theirs
    assert tok.unk_id in sum(ours, [])  # the check covered [UNK] too


def test_batches_stream_and_do_not_change_the_result(rich_corpus, tmp_path, monkeypatch):
    second = write(tmp_path / "second.txt", "\n".join(ENGLISH * 3) + "\n")
    expected = learn_vocab([rich_corpus, second], 200, progress=False)
    sizes = []
    make = learn._pretokenizer

    def spy(*args):
        split_words = make(*args)

        def run(lines):
            sizes.append(int(lines.shape[0]))
            return split_words(lines)

        return run

    monkeypatch.setattr(learn, "_BATCH_LINES", 7)
    monkeypatch.setattr(learn, "_pretokenizer", spy)
    assert learn_vocab([rich_corpus, second], 200, progress=False) == expected
    lines = sum(1 for f in (rich_corpus, second) for l in open(f, encoding="utf-8") if l.strip())
    assert max(sizes) == 7 and sum(sizes) == lines


def test_bad_input_raises_data_error_naming_the_file(rich_corpus, tmp_path):
    out = tmp_path / "vocab.txt"
    cases = [
        (write(tmp_path / "bad.txt", b"fine line\n" * 30 + b"caf\xe9\n"), r"bad.txt:31: not valid UTF-8"),
        (write(tmp_path / "nul.txt", b"x" * 9000 + b"\nnul \x00 here\n"), r"nul.txt:2: NUL byte"),
        (write(tmp_path / "binary.txt", b"\x00\x01\x02"), r"binary.txt: looks like a binary file"),
        (write(tmp_path / "empty.txt", b""), r"empty.txt: file is empty"),
        (tmp_path / "missing.txt", r"missing.txt: file not found"),
        (tmp_path, r": is a directory"),
    ]
    for path, message in cases:
        with pytest.raises(DataError, match=message):
            learn_vocab([rich_corpus, path], 100, out=out, progress=False)
        assert not out.exists()
    blank = write(tmp_path / "blank.txt", "\n \n\t\n")
    with pytest.raises(DataError, match="blank.txt: no text"):
        learn_vocab(blank, 100, out=out, progress=False)
    assert not out.exists()


def test_error_while_training_is_the_same_data_error(rich_corpus, tmp_path, monkeypatch):
    # A file that goes bad after the check (or a check skipped): the error comes
    # out of the trainer's thread unchanged.
    scan = learn._scan_files
    monkeypatch.setattr(learn, "_scan_files", lambda files: scan(files[:1]) | set("fine line"))
    bad = write(tmp_path / "bad.txt", b"fine line\n" * 5000 + b"caf\xe9\n")
    out = tmp_path / "vocab.txt"
    with pytest.raises(DataError, match=r"bad.txt:5001: not valid UTF-8"):
        learn_vocab([rich_corpus, bad], 100, out=out, progress=False)
    assert not out.exists()


def test_progress(rich_corpus, capfd):
    learn_vocab(rich_corpus, 100, progress=False)
    assert capfd.readouterr() == ("", "")
    learn_vocab(rich_corpus, 100, progress=True)
    err = capfd.readouterr().err
    total = tqdm.tqdm.format_sizeof(os.path.getsize(rich_corpus))
    assert "learn vocab: 100%" in err and f"| {total}/{total} [" in err


def test_ctrl_c_stops_training_promptly():
    tokenizers = pytest.importorskip("tokenizers")
    model = tokenizers.Tokenizer(tokenizers.models.WordPiece(unk_token="[UNK]"))
    model.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    trainer = tokenizers.trainers.WordPieceTrainer(vocab_size=100, special_tokens=["[UNK]"], show_progress=False)
    stop = threading.Event()
    served = []

    def batches():  # about a minute of input unless stopped
        for i in range(6000):
            if stop.is_set():
                raise learn._Stopped()
            time.sleep(0.01)
            served.append(i)
            yield [f"word{i} more words"] * 10

    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            learn._train_interruptibly(model, trainer, batches(), stop)
    finally:
        timer.cancel()
    assert time.monotonic() - start < 10
    count = len(served)
    time.sleep(0.2)
    assert len(served) == count  # the trainer's thread has stopped reading


# --- through `kbert vocab` -----------------------------------------------------------


def test_cli_min_frequency_and_short_vocab_note(tmp_path):
    from kbert.cli import main

    corpus = write(tmp_path / "c.txt", "abc abd abc abd\nxyz\n")
    out = tmp_path / "vocab.txt"
    args = ["vocab", "--corpus", str(corpus), "--size", "500", "--out", str(out)]
    result = CliRunner().invoke(main, args + ["--min-frequency", "1"])
    assert result.exit_code == 0, result.output
    vocab = load_vocab(out)
    assert "xyz" in vocab and len(vocab) < 500
    assert f"wrote {len(vocab)} tokens" in result.output
    assert "fewer than --size 500" in result.output and "--min-frequency 1" in result.output
    # The default (2) does not learn the word seen once.
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "xyz" not in load_vocab(out) and "abc" in load_vocab(out)
    result = CliRunner().invoke(main, args + ["--min-frequency", "0"])
    assert result.exit_code == 2 and "--min-frequency" in result.output
