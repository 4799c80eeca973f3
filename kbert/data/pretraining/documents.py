"""Reading pre-training documents: files, sentences, held-out split.

A document is a list of sentence strings. `read_documents` streams them from
text files in Google's BERT format (one sentence a line, a blank line between
documents) or, with `split_sentences=True`, from paragraphs cut by the small
rule-based `split_sentences`. Only one document per open file is in memory,
and up to `INTERLEAVE_FILES` files are read in turn so that the stream mixes
sources the way Google's global shuffle does.

This module is pure Python (no NumPy, no TensorFlow): the sentence splitter is
also used to build corpora (`kbert.data.docstrings`) in processes that never
start TensorFlow, and a test checks that importing it keeps it that way.
"""

import collections
import glob
import hashlib
import os
import re

from kbert.errors import DataError, KbertError
from kbert.io import check_text_file, iter_text_lines

# A document longer than this is cut into pieces of this many sentences, which
# bounds the memory of the negatives buffer even for a file without blank lines.
MAX_DOCUMENT_SENTENCES = 2000

# Files read at the same time (one document from each in turn).
INTERLEAVE_FILES = 16

SPLITS = ("train", "heldout")


def expand_paths(paths):
    """Expand files and glob patterns into a checked list of files.

    Each pattern expands in sorted order; a pattern that matches no file is an
    error (a typo should not silently give a smaller corpus).

    Args:
        paths: a path or pattern, or a list of them.

    Returns:
        A list of file paths, each checked with `kbert.io.check_text_file`.

    Raises:
        DataError: no paths, a pattern matching nothing, or a missing, empty
            or binary file.

    Examples:

    >>> expand_paths(["corpus/*.txt", "extra.txt"])
    ['corpus/a.txt', 'corpus/b.txt', 'extra.txt']
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = []
    for path in paths:
        path = os.fspath(path)
        if glob.has_magic(path):
            matches = sorted(m for m in glob.glob(path) if os.path.isfile(m))
            if not matches:
                raise DataError(f"{path}: no file matches this pattern")
            files.extend(matches)
        else:
            files.append(path)
    if not files:
        raise DataError("no input files given")
    for path in files:
        check_text_file(path)
    return files


# --- sentences -------------------------------------------------------------------

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr rev hon gen col capt lt sgt mt ft no nos vs etc "
    "inc ltd co corp dept est fig vol ed eds approx cf al jan feb mar apr jun jul "
    "aug sep sept oct nov dec".split()
)
# End punctuation, optional closing quotes/brackets, then whitespace.
_BOUNDARY = re.compile(r"[.!?]+[\"'\u2019\u201d)\]]*\s+")
_OPENERS = "\"'\u2018\u201c(["


def split_sentences(text):
    """Split a paragraph into sentences with a small rule-based splitter.

    A sentence ends at `.`, `!` or `?` (plus any closing quotes or brackets)
    followed by whitespace and a capital letter or digit (optionally after an
    opening quote or bracket), unless the period ends a known abbreviation
    ("Mr.", "e.g.", "etc."), an initial ("J.") or a dotted acronym ("U.S.").

    Args:
        text: str, one paragraph.

    Returns:
        A list of non-empty, stripped sentences.

    Examples:

    >>> split_sentences("Mr. Smith arrived. He sat down! Then? 3 cats left.")
    ['Mr. Smith arrived.', 'He sat down!', 'Then?', '3 cats left.']
    """
    sentences = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        after = text[match.end():].lstrip(_OPENERS)[:1]
        if not (after.isupper() or after.isdigit()):
            continue
        if text[match.start()] == "." and _ends_with_abbreviation(text, match.start()):
            continue
        sentence = text[start:match.end()].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _ends_with_abbreviation(text, period):
    # Only the last word matters; look at a short window so that long
    # paragraphs stay linear.
    word = text[max(0, period - 32):period].split()
    if not word:
        return False
    word = word[-1].lstrip(_OPENERS).lower()
    if len(word) == 1 and word.isalpha():
        return True  # an initial: "J. R. R. Tolkien"
    if "." in word and all(len(part) == 1 for part in word.split(".")):
        return True  # "u.s", "e.g", "i.e"
    return word in _ABBREVIATIONS


# --- held-out split ------------------------------------------------------------------


def held_out_split(document, holdout):
    """The split ("train" or "heldout") a document belongs to.

    A document is held out when a hash of its text falls in the first `holdout`
    fraction of the hash range. Hashing the text (rather than counting
    documents) keeps the assignment stable when files are added, reordered or
    re-read, and sends duplicate documents to the same side, so a duplicate
    cannot leak held-out text into training.

    Args:
        document: a list of sentence strings.
        holdout: float in [0, 1): the expected fraction of held-out documents.

    Examples:

    >>> held_out_split(["Some text.", "More text."], 0.01)
    'train'
    """
    if holdout <= 0:
        return "train"
    digest = hashlib.blake2b("\n".join(document).encode("utf-8"), digest_size=8).digest()
    return "heldout" if int.from_bytes(digest, "big") < holdout * 2.0**64 else "train"


def check_split(holdout, split):
    """Raise `KbertError` unless `holdout` and `split` make a valid choice."""
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not 0 <= holdout < 1:
        raise KbertError(f"holdout: expected a fraction in [0, 1), got {holdout!r}")
    if split not in SPLITS:
        raise KbertError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
    if split == "heldout" and holdout == 0:
        raise KbertError("split='heldout' needs holdout > 0")


# --- documents -------------------------------------------------------------------------


def read_documents(paths, split_sentences=False, holdout=0.0, split="train"):
    """Stream documents (lists of sentences) from text files.

    Input format (Google's BERT format): one sentence per line, a blank line
    between documents. A document also ends at the end of each file, and one
    longer than `MAX_DOCUMENT_SENTENCES` sentences is cut into pieces.

    With `split_sentences=True` every line is a paragraph, split into sentences
    with `split_sentences`; paragraphs between blank lines form one document.
    A file with no blank line at all is read as one document per line (the
    usual "one document per line" dump), which costs one extra read of it.

    Only one document is in memory at a time. Files are checked before the first
    document is produced; a line that is not UTF-8 raises when it is reached.

    Args:
        paths: file paths or glob patterns (see `expand_paths`).
        split_sentences: the input is paragraphs, not sentences.
        holdout: fraction of documents to hold out for evaluation, chosen by a
            hash of their text (see `held_out_split`). 0 keeps everything.
        split: "train" yields the documents that are not held out, "heldout"
            only the held-out ones.

    Returns:
        An iterator of documents, each a non-empty list of stripped sentences.

    Raises:
        DataError: a path is missing, empty, binary or not UTF-8 (naming the
            file and line), or a pattern matches nothing.

    Examples:

    >>> for document in read_documents("corpus/*.txt", holdout=0.01):
    ...     print(len(document), document[0])
    """
    files = expand_paths(paths)
    check_split(holdout, split)
    return iter_documents(files, split_sentences, holdout, split)


def iter_documents(files, paragraphs, holdout, split, on_bytes=None):
    """`read_documents` on already checked files, without argument checks.

    `on_bytes(n)`, if given, is called with the size of every line read (the
    progress bar of `write_tfrecords`); the calls add up to the files' sizes.
    """
    streams = [_file_documents(path, paragraphs, on_bytes) for path in files]
    for document in _interleave(streams):
        if held_out_split(document, holdout) == split:
            yield document


def _interleave(streams):
    """Round-robin over up to `INTERLEAVE_FILES` open streams (like tf.data's
    `interleave`): one document from each file in turn. Google's script shuffles
    all documents of all files; reading files one after another instead would
    fill the negatives window with one source at a time (random-next segments
    from the same book or the same news feed) and feed the model long runs of
    one domain."""
    pending = collections.deque(streams)
    active = collections.deque()
    while pending and len(active) < INTERLEAVE_FILES:
        active.append(pending.popleft())
    while active:
        stream = active.popleft()
        document = next(stream, None)
        if document is not None:
            yield document
            active.append(stream)
        elif pending:
            # The next file takes the finished one's turn.
            active.appendleft(pending.popleft())


def _file_documents(path, paragraphs, on_bytes):
    one_per_line = paragraphs and not _has_blank_line(path)
    document = []
    counted = 0
    for _, line in iter_text_lines(path):
        if on_bytes is not None:
            size = len(line.encode("utf-8")) + 1
            counted += size
            on_bytes(size)
        text = line.strip()
        if not text:
            if document:
                yield document
                document = []
            continue
        document.extend(split_sentences(text) if paragraphs else [text])
        if one_per_line or len(document) >= MAX_DOCUMENT_SENTENCES:
            yield document
            document = []
    if document:
        yield document
    if on_bytes is not None:
        # Line lengths miss "\r" and a BOM; settle up so the bar ends at 100%.
        on_bytes(os.path.getsize(path) - counted)


def _has_blank_line(path):
    for _, line in iter_text_lines(path):
        if not line.strip():
            return True
    return False
