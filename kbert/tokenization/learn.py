"""Learning a WordPiece vocabulary from text files.

The learner is Hugging Face `tokenizers`' WordPiece trainer (Rust). We do not
let it normalize or split the text itself: its Unicode tables are older than
TensorFlow's, so it would, for example, keep marks and format characters that
`BertTokenizer` drops. Instead each batch of lines goes through kbert's own
`normalize_text` and a split into words and punctuation that matches the
wordpiece op, and the trainer only splits on whitespace. The trainer thus sees
exactly the words `BertTokenizer` will see.

We also fix the alphabet before training. Left to itself, the trainer numbers
the "##" forms of characters in hash-map order, which breaks ties between
equally frequent merges differently from run to run (huggingface/tokenizers
#1794): on sample.txt at size 8000, up to 126 tokens differed between runs.
Given every character and "##" form up front, it learns the same vocabulary
every time.
"""
import numbers
import os
import threading

import tensorflow as tf

from kbert.errors import DataError, KbertError
from kbert.io import iter_text_lines
from kbert.outputs import output_file, writes_output
from kbert.tokenization.normalize import normalize_text
from kbert.tokenization.vocab import (
    MAX_CHARS_PER_WORD,
    SPECIAL_TOKENS,
    WORDPIECE_SUFFIX as _SUFFIX,
)

# Lines normalized per TensorFlow call: large enough that per-call overhead
# vanishes, small enough that memory stays flat.
_BATCH_LINES = 2048

# What tf-text's wordpiece op treats as a word of its own: ASCII punctuation,
# Unicode punctuation (P*) and CJK ideographs, as in Google's BERT. Measured
# identical to the op over all code points, except 13 punctuation characters
# new in Unicode 16 that RE2's tables do not know yet.
_CJK = (
    r"\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}"
    r"\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}"
)
_SPLIT_CHARS = r"[\p{P}!-/:-@\[-`{-~" + _CJK + "]"


def _pretokenizer(lowercase, strip_accents):
    """A compiled function: raw lines -> (space-separated words, bytes read)."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def split_words(lines):
        text = normalize_text(lines, lowercase, strip_accents)
        # Spaces around each punctuation or CJK character make it a word; the
        # trainer then splits on whitespace, as the wordpiece op does.
        text = tf.strings.regex_replace(text, _SPLIT_CHARS, r" \0 ")
        return text, tf.reduce_sum(tf.strings.length(lines))

    return split_words


def _scan_files(files):
    """Read every file once; return the set of characters of its non-blank lines.

    Bad input thus fails before any progress output.
    """
    chars = set()
    for path in files:
        for _, line in iter_text_lines(path):
            if line.strip():
                chars.update(line)
    return chars


def _alphabet(raw_chars, files, lowercase, strip_accents, budget):
    """The characters the trainer will see, and which of them get a "##" form.

    Characters are normalized one at a time, which gives the same set as
    normalizing whole lines. Punctuation and CJK are always words of one
    character: they get no "##" form. All other characters get one, as in
    Google's BERT vocabularies. If these take more than `budget` tokens, the
    most frequent characters are kept (counted in a second pass).
    """
    import tokenizers

    raw = sorted(raw_chars)
    normalized = normalize_text(tf.constant(raw or [""]), lowercase, strip_accents)
    whitespace = tokenizers.pre_tokenizers.WhitespaceSplit()
    chars = sorted(
        {c for piece in normalized.numpy() for c in piece.decode("utf-8")
         if whitespace.pre_tokenize_str(c)}
    )
    if not chars:
        return [], []
    alone = tf.strings.regex_full_match(tf.constant(chars), _SPLIT_CHARS).numpy()
    alone = {c for c, a in zip(chars, alone) if a}
    cost = len(chars) + len(chars) - len(alone)
    if cost > budget:
        counts = _count_chars(files, raw, normalized, set(chars))
        kept, cost = [], 0
        for c in sorted(chars, key=lambda c: (-counts[c], c)):
            extra = 1 if c in alone else 2
            if cost + extra <= budget:
                kept.append(c)
                cost += extra
        chars = sorted(kept)
    return chars, [c for c in chars if c not in alone]


def _count_chars(files, raw, normalized, chars):
    """How often each of `chars` occurs in the normalized files."""
    import collections

    raw_counts = collections.Counter()
    for path in files:
        for _, line in iter_text_lines(path):
            raw_counts.update(line)
    counts = collections.Counter()
    for c, piece in zip(raw, normalized.numpy()):
        for n in piece.decode("utf-8"):
            if n in chars:
                counts[n] += raw_counts[c]
    return counts


class _Stopped(Exception):
    pass


def _train_interruptibly(model, trainer, batches, stop):
    """`model.train_from_iterator(batches, trainer)`, stoppable with Ctrl-C.

    The trainer holds the main thread in Rust until it is done, so Python would
    see Ctrl-C only after the whole corpus. Training in a worker thread keeps the
    main thread free to take KeyboardInterrupt; `stop` then makes the next batch
    end the training.
    """
    failure = []
    # Waiting on our own Event, not Thread.join: after a join interrupted by
    # Ctrl-C, Python 3.11 takes the thread for finished and join returns at once.
    done = threading.Event()

    def train():
        try:
            model.train_from_iterator(batches, trainer)
        except BaseException as e:  # re-raised in the calling thread
            failure.append(e)
        finally:
            done.set()

    threading.Thread(target=train, name="learn_vocab", daemon=True).start()
    try:
        while not done.wait(0.1):
            pass
    except KeyboardInterrupt:
        stop.set()
        done.wait()  # the current batch, or the merges if reading is over
        raise
    if failure:
        raise failure[0]


@writes_output("vocab", inputs=("files",))
def learn_vocab(
    files,
    size,
    lowercase=True,
    strip_accents=None,
    reserved_tokens=SPECIAL_TOKENS,
    out=None,
    progress=True,
    min_frequency=2,
    overwrite=False,
):
    """Learn a WordPiece vocabulary from UTF-8 text files.

    Uses Hugging Face `tokenizers`' WordPiece trainer, fed with text that is
    normalized and split into words exactly as `BertTokenizer` will do it, so
    the vocabulary fits the tokenizer that uses it. The files are streamed in
    batches of lines: memory does not grow with the corpus. Blank lines are
    skipped.

    The vocabulary holds the reserved tokens, then the characters of the
    corpus, their "##" forms (none for punctuation and CJK, which are always
    words of their own), then the pieces the trainer builds by merging
    the most frequent pairs, until `size` tokens. A corpus with too few pieces
    seen at least `min_frequency` times gives fewer tokens. If the characters
    and their "##" forms do not fit in `size`, the most frequent characters
    are kept; words with the others become `[UNK]`. The same files and
    arguments always give the same vocabulary.

    Args:
        files: a path or a list of paths to text files.
        size: int. Vocabulary size, reserved tokens included.
        lowercase: bool. Lowercase the text (BERT uncased).
        strip_accents: bool. Strip accents; defaults to `lowercase`.
        reserved_tokens: tokens placed first, in this order. Must contain all of
            `SPECIAL_TOKENS`.
        out: optional path; the vocabulary is written there (one token per
            line), replacing the file only once it is complete. It is checked
            (writable, not a corpus file) before learning starts.
        progress: bool. Show a progress bar over the input bytes.
        min_frequency: int. A merged piece is added only if it occurs at least
            this many times in the corpus (single characters always are).
            2 skips pieces seen once; 1 reaches `size` on the smallest corpora.
        overwrite: replace an existing `out` that is not a vocabulary kbert
            learned (one that does not start with the special tokens).

    Returns:
        The vocabulary as a list of tokens.

    Examples:

    >>> vocab = learn_vocab(["corpus.txt"], size=8000, out="vocab.txt")
    >>> tokenizer = BertTokenizer(vocab)
    """
    import tokenizers
    import tqdm

    if isinstance(files, (str, os.PathLike)):
        files = [files]
    files = [os.fspath(f) for f in files]
    reserved_tokens = list(reserved_tokens)
    missing = [t for t in SPECIAL_TOKENS if t not in reserved_tokens]
    if missing:
        raise KbertError(f"reserved_tokens must include {', '.join(missing)}")
    if len(set(reserved_tokens)) != len(reserved_tokens):
        raise KbertError("reserved_tokens contains duplicates")
    if size <= len(reserved_tokens):
        raise KbertError(
            f"vocabulary size {size} must be larger than the {len(reserved_tokens)} "
            "reserved tokens"
        )
    if not isinstance(min_frequency, numbers.Integral) or min_frequency < 1:
        raise KbertError(f"min_frequency must be an integer of at least 1, got {min_frequency!r}")
    if strip_accents is None:
        strip_accents = lowercase
    if not files:
        raise KbertError("no input files given")
    raw_chars = _scan_files(files)
    reserved = set(reserved_tokens)
    chars, continued = _alphabet(
        raw_chars, files, lowercase, strip_accents, budget=size - len(reserved_tokens)
    )
    if not chars:
        raise DataError(f"{', '.join(files)}: no text to learn a vocabulary from")
    continued = [_SUFFIX + c for c in continued if _SUFFIX + c not in reserved]

    split_words = _pretokenizer(lowercase, strip_accents)
    bar = tqdm.tqdm(
        total=sum(os.path.getsize(f) for f in files),
        unit="B",
        unit_scale=True,
        desc="learn vocab",
        disable=not progress,
    )

    def batches():
        done = 0
        for path in files:
            lines = []
            for _, line in iter_text_lines(path):
                if line.strip():
                    lines.append(line)
                if len(lines) == _BATCH_LINES:
                    yield run(lines)
                    lines = []
            if lines:
                yield run(lines)
            # Only the lines' own bytes were counted: add line endings and blank lines.
            done += os.path.getsize(path)
            bar.update(done - bar.n)
        bar.set_postfix_str("merging")

    def run(lines):
        if stop.is_set():
            raise _Stopped()
        words, nbytes = split_words(tf.constant(lines))
        bar.update(int(nbytes))
        return [w.decode("utf-8") for w in words.numpy()]

    trainer = tokenizers.trainers.WordPieceTrainer(
        vocab_size=int(size),
        min_frequency=int(min_frequency),
        # Given as special tokens, the "##" forms exist before the trainer
        # meets them, so they are numbered the same on every run.
        special_tokens=reserved_tokens + continued,
        initial_alphabet=chars,
        limit_alphabet=len(chars),
        continuing_subword_prefix=_SUFFIX,
        show_progress=False,
    )
    model = tokenizers.Tokenizer(
        tokenizers.models.WordPiece(
            unk_token="[UNK]",
            continuing_subword_prefix=_SUFFIX,
            max_input_chars_per_word=MAX_CHARS_PER_WORD,
        )
    )
    model.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    stop = threading.Event()
    try:
        _train_interruptibly(model, trainer, batches(), stop)
    finally:
        bar.close()
    ids = model.get_vocab(with_added_tokens=False)
    learned = sorted(ids, key=ids.get)
    # The trainer numbers tokens 0..n-1 in the order of its special tokens,
    # then the alphabet, then merged pieces; check it, since a vocabulary file
    # has no other way to say which id is which.
    head = reserved_tokens + continued
    if [ids[t] for t in learned] != list(range(len(learned))) or learned[: len(head)] != head:
        raise RuntimeError("tokenizers' WordPiece trainer returned unexpected ids")
    alphabet = [c for c in chars if c not in reserved]
    rest = learned[len(head):]
    if rest[: len(alphabet)] != alphabet:
        raise RuntimeError("tokenizers' WordPiece trainer changed the alphabet")
    # Reserved tokens, characters, their "##" forms, merged pieces.
    vocab = reserved_tokens + alphabet + continued + rest[len(alphabet):]
    if out is not None:
        with output_file(out, "vocab") as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write("".join(token + "\n" for token in vocab))
    return vocab
