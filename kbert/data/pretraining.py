"""BERT pre-training data: raw text to masked-LM + next-sentence examples.

The recipe is Google's `create_pretraining_data.py` (google-research/bert):
documents are cut into `[CLS] A [SEP] B [SEP]` pairs, B is the true continuation
or (half the time) a segment of another document, the pair is truncated longest
first, and 15% of the tokens are selected for prediction (80% `[MASK]`, 10% a
random token, 10% unchanged), optionally whole words at a time.

What we reuse: tokenization is kbert's in-graph `BertTokenizer` (tf-text's
`FastBertTokenizer` underneath), called on large batches of sentences; files go
through `kbert.io` (checked UTF-8 reading, atomic output directories); the
datasets are plain `tf.data`.

Why we write our own instead of running Google's script or using keras-hub's
`MaskedLMMaskGenerator` / tf-text's `mask_language_model`:

* Streaming. Google's script holds every tokenized document and every instance
  in memory (it shuffles them all); we read documents one at a time and keep
  only a bounded window of `negatives_buffer` documents, from which random-next
  segments are drawn. Memory stays flat however large the corpus; the price is
  that "random" documents are drawn from nearby in the stream rather than from
  the whole corpus, and that instances come out in corpus order (mix with the
  datasets' shuffle buffers, and split big corpora into many files). Documents
  of up to `INTERLEAVE_FILES` files are read in turn, so that the window mixes
  sources the way Google's global shuffle does.
* Recipe fidelity. Pairing, the "put back" of unused sentences, random
  front/back truncation and whole-word selection that skips words which no
  longer fit follow Google's code. tf-text's `RandomItemSelector` (under
  keras-hub's `MaskedLMMaskGenerator`) selects `ceil(rate * n)` items, counting
  a whole word as one item, and shuffles with stateful random ops, which cannot
  give reproducible masks in a parallel `tf.data` map. Our in-graph masker
  (`mask_tokens_tf`) uses stateless random ops seeded per batch and matches
  `mask_tokens` (NumPy) in distribution.

Deliberate differences from Google's script, all small:

* The number of predictions is `round(masked_lm_prob * n)` with `n` the
  selectable tokens (Google counts `[CLS]`/`[SEP]` in `n`).
* Reserved tokens of the form `[...]` (`[PAD]`, `[UNK]`, `[CLS]`, `[SEP]`,
  `[MASK]`, `[unused*]`) are never selected and never used as random
  replacements (Google selects `[UNK]` and draws replacements from the whole
  vocabulary).
* A document ends at a blank line *or at the end of a file* (Google lets the
  last document of a file run on into the next file), and documents longer than
  `MAX_DOCUMENT_SENTENCES` sentences are cut into pieces so that one huge
  document cannot break the memory bound.
* A word piece right after `[CLS]`/`[SEP]` (left there by front truncation)
  starts its own whole-word group (Google would glue it to the previous word,
  across the `[SEP]`).

Two ways to feed a model, both yielding Keras-ready `(x, y, sample_weight)`:

* `write_tfrecords` + `tfrecord_dataset`: masks are fixed when written (Google's
  way; use `dupe_factor` > 1 for several maskings of the corpus).
* `dynamic_dataset`: instances are built by a Python generator and masked in the
  `tf.data` graph, so every epoch sees new pairs and new masks.
"""

import atexit
import collections
import contextlib
import dataclasses
import functools
import glob
import hashlib
import itertools
import json
import os
import re
import threading
import time
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from kbert.errors import DataError, KbertError
from kbert.io import atomic_dir, check_text_file, iter_text_lines, read_json

DATA_INFO = "pretrain_data.json"
DATA_FORMAT = "kbert-pretrain-data"
DATA_VERSION = 1
SHARD_NAME = "pretrain-{:05d}-of-{:05d}.tfrecord"

# A document longer than this is cut into pieces of this many sentences, which
# bounds the memory of the negatives buffer even for a file without blank lines.
MAX_DOCUMENT_SENTENCES = 2000

# Sentences tokenized per call: the tokenizer runs ~1.2M tokens/s on batches of
# 1000+ sentences but ~250k/s on one document (~50 sentences) at a time.
_TOKENIZE_BATCH = 2048

SPLITS = ("train", "heldout")
# Files read at the same time (one document from each in turn).
INTERLEAVE_FILES = 16


# --- configuration -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PretrainingConfig:
    """How pre-training instances are built and masked.

    Args:
        seq_len: length of every example, `[CLS]`, `[SEP]`s and padding included.
        short_seq_prob: probability that a document's instances aim at a random
            length in `[2, seq_len - 3]` instead of `seq_len - 3` tokens, so the
            model also sees short inputs (drawn once per document, as Google does).
        masked_lm_prob: fraction of the selectable tokens to predict.
        max_predictions_per_seq: at most this many predictions per example
            (the length of `mask_positions`).
        whole_word_mask: select all pieces of a word together.
        random_next_prob: probability that segment B comes from another document
            (NSP label 1); always when A's chunk has a single sentence.
        dupe_factor: `write_tfrecords` writes the corpus this many times, each
            with new pairs and masks.
        negatives_buffer: number of tokenized documents kept in memory to draw
            random-next segments from (about half before and half after the
            current document in the stream).
        seed: seed of all random choices.

    Examples:

    >>> config = PretrainingConfig(seq_len=512, max_predictions_per_seq=76)
    >>> config.to_dict()["seq_len"]
    512
    """

    seq_len: int = 128
    short_seq_prob: float = 0.1
    masked_lm_prob: float = 0.15
    max_predictions_per_seq: int = 20
    whole_word_mask: bool = False
    random_next_prob: float = 0.5
    dupe_factor: int = 1
    negatives_buffer: int = 1000
    seed: int = 12345

    def __post_init__(self):
        _check_int(self, "seq_len", 5)
        _check_int(self, "max_predictions_per_seq", 1, self.seq_len - 3)
        _check_int(self, "dupe_factor", 1)
        _check_int(self, "negatives_buffer", 2)
        _check_int(self, "seed", 0)
        _check_rate(self, "short_seq_prob", 0.0)
        _check_rate(self, "random_next_prob", 0.0)
        _check_rate(self, "masked_lm_prob", None)
        if not isinstance(self.whole_word_mask, bool):
            raise KbertError(
                f"PretrainingConfig.whole_word_mask: expected true or false, "
                f"got {self.whole_word_mask!r}"
            )

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values, source="PretrainingConfig"):
        """Build from `to_dict()`'s output; unknown keys are an error."""
        if not isinstance(values, dict):
            raise KbertError(f"{source}: expected an object, got {type(values).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise KbertError(f"{source}: unknown field(s) {', '.join(unknown)}")
        return cls(**values)


def _check_int(config, name, low, high=None):
    value = getattr(config, name)
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise KbertError(f"PretrainingConfig.{name}: expected an integer {bound}, got {value!r}")


def _check_rate(config, name, low):
    value = getattr(config, name)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if low is None:  # an open lower bound: 0 predictions makes no sense
        if not ok or not 0.0 < value <= 1.0:
            raise KbertError(f"PretrainingConfig.{name}: expected a rate in (0, 1], got {value!r}")
    elif not ok or not low <= value <= 1.0:
        raise KbertError(f"PretrainingConfig.{name}: expected a rate in [0, 1], got {value!r}")


# --- reading documents ---------------------------------------------------------


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


def _check_split(holdout, split):
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not 0 <= holdout < 1:
        raise KbertError(f"holdout: expected a fraction in [0, 1), got {holdout!r}")
    if split not in SPLITS:
        raise KbertError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
    if split == "heldout" and holdout == 0:
        raise KbertError("split='heldout' needs holdout > 0")


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
    _check_split(holdout, split)
    return _documents(files, split_sentences, holdout, split)


def _documents(files, split_sentences, holdout, split, on_bytes=None):
    for document in _interleave(
        [_file_documents(path, split_sentences, on_bytes) for path in files]
    ):
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


def _file_documents(path, split_sentences, on_bytes):
    one_per_line = split_sentences and not _has_blank_line(path)
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
        document.extend(_split(text) if split_sentences else [text])
        if one_per_line or len(document) >= MAX_DOCUMENT_SENTENCES:
            yield document
            document = []
    if document:
        yield document
    if on_bytes is not None:
        # Line lengths miss "\r" and a BOM; settle up so the bar ends at 100%.
        on_bytes(os.path.getsize(path) - counted)


_split = split_sentences  # read_documents' argument shadows the function


def _has_blank_line(path):
    for _, line in iter_text_lines(path):
        if not line.strip():
            return True
    return False


# --- tokenized documents ---------------------------------------------------------


class _Document(NamedTuple):
    """A tokenized document: all ids in one array, sentence i is
    `ids[splits[i]:splits[i + 1]]` (two arrays per document instead of one per
    sentence keeps the negatives buffer small)."""

    index: int
    ids: np.ndarray
    splits: np.ndarray

    @property
    def num_sentences(self):
        return len(self.splits) - 1


class _Vocab:
    """Id tables of a tokenizer that the data code needs."""

    def __init__(self, tokenizer):
        tokens = tokenizer.vocab
        self.size = len(tokens)
        self.cls_id = tokenizer.cls_id
        self.sep_id = tokenizer.sep_id
        self.pad_id = tokenizer.pad_id
        self.mask_id = tokenizer.mask_id
        self.special_ids = special_token_ids(tokenizer)
        self.word_start = np.array([not t.startswith("##") for t in tokens])
        self.sha256 = hashlib.sha256("".join(t + "\n" for t in tokens).encode("utf-8")).hexdigest()


def special_token_ids(tokenizer):
    """Ids of the reserved tokens, written `[...]`: `[PAD]`, `[UNK]`, `[CLS]`,
    `[SEP]`, `[MASK]` and e.g. `[unused0]`.

    They are never selected for prediction and never used as random
    replacements. (WordPiece splits off "[" as punctuation, so no token learned
    from text has this form.)

    Returns:
        A sorted int32 array.
    """
    ids = [
        i for i, t in enumerate(tokenizer.vocab)
        if len(t) > 2 and t.startswith("[") and t.endswith("]")
    ]
    return np.array(sorted(ids), np.int32)


def _tokenize_documents(documents, tokenizer, counts=None):
    """Tokenize documents many at a time; yield `_Document`s in order.

    Sentences with no tokens are dropped, and documents left empty with them,
    as Google does. `counts`, if given, gets "documents", "sentences" and
    "tokens" added up.
    """
    index = 0
    batch = []
    size = 0
    for document in documents:
        batch.append(document)
        size += len(document)
        if size >= _TOKENIZE_BATCH:
            for item in _tokenize_batch(batch, tokenizer, index, counts):
                index += 1
                yield item
            batch, size = [], 0
    if batch:
        yield from _tokenize_batch(batch, tokenizer, index, counts)


def _tokenize_batch(documents, tokenizer, first_index, counts):
    ragged = tokenizer.tokenize([s for d in documents for s in d])
    flat = ragged.flat_values.numpy().astype(np.int32)
    row_splits = ragged.row_splits.numpy()
    index = first_index
    row = 0
    for document in documents:
        rows = row_splits[row:row + len(document) + 1]
        row += len(document)
        lengths = np.diff(rows)
        lengths = lengths[lengths > 0]
        if not len(lengths):
            continue
        # Copies, so a document kept in the buffer does not pin the whole batch.
        ids = flat[rows[0]:rows[-1]].copy()
        splits = np.concatenate([[0], np.cumsum(lengths)])
        if counts is not None:
            counts["documents"] += 1
            counts["sentences"] += len(lengths)
            counts["tokens"] += len(ids)
        yield _Document(index, ids, splits)
        index += 1


# --- instances -----------------------------------------------------------------


def create_instances(documents, tokenizer, config=None, rng=None):
    """Turn documents into unmasked `[CLS] A [SEP] B [SEP]` instances.

    Follows Google's `create_instances_from_document`: each document gets a
    target length (`seq_len - 3`, or with probability `short_seq_prob` a random
    one in `[2, seq_len - 3]`); sentences are gathered into a chunk until it
    reaches the target (or the document ends); A is the chunk's first `a_end`
    sentences (`a_end` random); B is the rest of the chunk (NSP label 0) or, with
    probability `random_next_prob` and always for a one-sentence chunk, a run of
    sentences from a random other document, long enough to fill the target
    (label 1), in which case the unused sentences of the chunk are "put back"
    for the next instance. The pair is then truncated to `seq_len - 3` tokens,
    one token at a time from the longer segment (from B on ties), each time from
    its front or back at random, exactly as Google's `truncate_seq_pair`.

    Streaming: where Google picks the random document from the whole corpus, we
    pick it from a window of the `negatives_buffer` most recently tokenized
    documents, the stream being read about `negatives_buffer // 2` documents
    ahead of the document being cut. It is never the current document.

    Args:
        documents: an iterable of documents (lists of sentence strings), e.g.
            `read_documents(...)`. Read lazily; tokenized in batches.
        tokenizer: a `kbert.BertTokenizer`.
        config: a `PretrainingConfig` (default: the defaults).
        rng: a `numpy.random.Generator` (default: seeded with `config.seed`).

    Yields:
        dicts with `token_ids` (int32 `[n]`, `n <= seq_len`, no padding),
        `segment_ids` (int32 `[n]`), `word_starts` (bool `[n]`: the token does
        not start with "##"; what whole-word masking groups by), `nsp_label`
        (0 = B follows A, 1 = B is random), and `a_doc` / `b_doc`, the running
        indices (0-based, among non-empty documents) of the documents A and B
        come from.

    Raises:
        DataError: B must be random but there is only one document.

    Examples:

    >>> docs = read_documents("corpus.txt")
    >>> for instance in create_instances(docs, tokenizer, PretrainingConfig()):
    ...     print(tokenizer.convert_ids_to_tokens(instance["token_ids"]))
    """
    config = config or PretrainingConfig()
    if rng is None:
        rng = np.random.default_rng(config.seed)
    vocab = _Vocab(tokenizer)
    yield from _instances(_tokenize_documents(documents, tokenizer), config, rng, vocab)


def _instances(tokenized, config, rng, vocab):
    lookahead = config.negatives_buffer // 2
    window = collections.deque(maxlen=config.negatives_buffer)
    pending = collections.deque()
    for document in tokenized:
        # pending is always part of window: lookahead < negatives_buffer.
        window.append(document)
        pending.append(document)
        if len(pending) > lookahead:
            yield from _document_instances(pending.popleft(), window, config, rng, vocab)
    while pending:
        yield from _document_instances(pending.popleft(), window, config, rng, vocab)


def _document_instances(document, window, config, rng, vocab):
    max_tokens = config.seq_len - 3
    target = max_tokens
    if rng.random() < config.short_seq_prob:
        target = int(rng.integers(2, max_tokens + 1))
    ids, splits = document.ids, document.splits
    count = document.num_sentences
    chunk_start = 0  # the chunk is sentences chunk_start..i
    i = 0
    while i < count:
        if i == count - 1 or splits[i + 1] - splits[chunk_start] >= target:
            size = i - chunk_start + 1
            a_end = chunk_start + (int(rng.integers(1, size)) if size >= 2 else 1)
            a = ids[splits[chunk_start]:splits[a_end]]
            if size == 1 or rng.random() < config.random_next_prob:
                other = _random_other_document(document, window, rng)
                b = _random_segment(other, target - len(a), rng)
                label, b_doc = 1, other.index
                i = a_end - 1  # put the unused sentences back
            else:
                b = ids[splits[a_end]:splits[i + 1]]
                label, b_doc = 0, document.index
            yield _make_instance(a, b, label, document.index, b_doc, max_tokens, rng, vocab)
            chunk_start = i + 1
        i += 1


class _OneDocumentError(DataError):
    """Raised without file names; callers that know them re-raise with them."""


def _random_other_document(document, window, rng):
    if len(window) < 2:
        raise _OneDocumentError(
            "the input has only one document; next-sentence pairs need at least two "
            "(documents are separated by blank lines)"
        )
    current = document.index - window[0].index
    k = int(rng.integers(len(window) - 1))
    return window[k + (k >= current)]


def _random_segment(document, target, rng):
    # Sentences from a random start until the target is reached (at least one),
    # as Google's loop over random_document does.
    splits = document.splits
    start = int(rng.integers(document.num_sentences))
    end = int(np.searchsorted(splits, splits[start] + target, side="left"))
    end = min(max(end, start + 1), document.num_sentences)
    return document.ids[splits[start]:splits[end]]


def truncate_pair(a, b, max_tokens, rng):
    """Google's `truncate_seq_pair`, in closed form.

    Tokens are removed one at a time from the longer segment (B on ties) until
    the pair fits; each removal takes the front or the back token with equal
    probability. We compute how many tokens each segment loses and draw how many
    of those come from the front (binomial), which gives the same distribution
    as Google's token-by-token loop without the loop.

    Args:
        a, b: 1-D arrays.
        max_tokens: int, the most tokens the pair may keep.
        rng: a `numpy.random.Generator`.

    Returns:
        The truncated `(a, b)`, views of the inputs.
    """
    excess = len(a) + len(b) - max_tokens
    if excess <= 0:
        return a, b
    # First the longer loses tokens until the lengths are equal; then B and A
    # take turns, B first.
    gap = min(excess, abs(len(a) - len(b)))
    cut_a, cut_b = (gap, 0) if len(a) > len(b) else (0, gap)
    rest = excess - gap
    cut_a += rest // 2
    cut_b += (rest + 1) // 2
    return _cut(a, cut_a, rng), _cut(b, cut_b, rng)


def _cut(tokens, count, rng):
    if not count:
        return tokens
    front = int(rng.binomial(count, 0.5))
    return tokens[front:len(tokens) - (count - front)]


def _make_instance(a, b, label, a_doc, b_doc, max_tokens, rng, vocab):
    a, b = truncate_pair(a, b, max_tokens, rng)
    token_ids = np.concatenate([[vocab.cls_id], a, [vocab.sep_id], b, [vocab.sep_id]])
    token_ids = token_ids.astype(np.int32)
    segment_ids = np.zeros(len(token_ids), np.int32)
    segment_ids[len(a) + 2:] = 1
    return {
        "token_ids": token_ids,
        "segment_ids": segment_ids,
        "word_starts": vocab.word_start[token_ids],
        "nsp_label": label,
        "a_doc": a_doc,
        "b_doc": b_doc,
    }


# --- masking -----------------------------------------------------------------------


class MaskedTokens(NamedTuple):
    """The result of masking: the masked ids and the prediction targets."""

    token_ids: object  # masked ids, same shape as the input
    mask_positions: object  # int32 [..., max_predictions_per_seq], sorted, 0-padded
    mask_ids: object  # int32, the original ids at mask_positions, 0-padded
    mask_weights: object  # float32, 1 for real predictions, 0 for padding


def _num_to_predict(num_candidates, config):
    # Python's round and np.round both round half to even, like tf.round.
    num = np.maximum(np.round(num_candidates * config.masked_lm_prob), 1)
    return np.minimum(np.minimum(num, config.max_predictions_per_seq), num_candidates)


class _SpecialTables(NamedTuple):
    is_special: np.ndarray  # bool [vocab_size]
    replacements: np.ndarray  # int32 ids a random replacement is drawn from


def _special_tables(vocab_size, special_ids):
    special_ids = np.asarray(special_ids, np.int32).reshape(-1)
    return _special_tables_cached(int(vocab_size), special_ids.tobytes())


@functools.lru_cache(maxsize=8)
def _special_tables_cached(vocab_size, special_bytes):
    special_ids = np.frombuffer(special_bytes, np.int32)
    if len(special_ids) and (special_ids.min() < 0 or special_ids.max() >= vocab_size):
        raise KbertError(f"special_ids: ids must be in [0, {vocab_size})")
    is_special = np.zeros(vocab_size, bool)
    is_special[special_ids] = True
    return _SpecialTables(is_special, np.flatnonzero(~is_special).astype(np.int32))


def mask_tokens(token_ids, config, rng, vocab_size, special_ids, mask_id, word_starts=None):
    """Select tokens to predict and mask them, Google's way (NumPy).

    Selects `min(max_predictions_per_seq, max(1, round(n * masked_lm_prob)))`
    of the `n` selectable tokens (all but `special_ids`). With
    `config.whole_word_mask`, words are taken whole in random order; a word
    that no longer fits under that number is skipped and smaller ones are
    still tried, as in Google's code. Each selected token becomes `[MASK]`
    with probability 0.8, a random non-special token with 0.1, and stays
    unchanged with 0.1.

    Args:
        token_ids: 1-D int array, e.g. an instance's `token_ids` (padding
            allowed if the pad id is in `special_ids`).
        config: a `PretrainingConfig`.
        rng: a `numpy.random.Generator`.
        vocab_size: int; random replacements are drawn from
            `range(vocab_size)` minus `special_ids`.
        special_ids: ids never selected or used as replacements (see
            `special_token_ids`).
        mask_id: the id of `[MASK]`.
        word_starts: bool array like `token_ids`: True where a token starts a
            word (does not start with "##"). Required for whole-word masking.
            A piece right after a special token starts a group of its own.

    Returns:
        A `MaskedTokens` of NumPy arrays; the prediction arrays have length
        `max_predictions_per_seq`.

    Examples:

    >>> rng = np.random.default_rng(0)
    >>> out = mask_tokens(instance["token_ids"], config, rng, tokenizer.vocab_size,
    ...                   special_token_ids(tokenizer), tokenizer.mask_id,
    ...                   instance["word_starts"])
    >>> out.mask_positions, out.mask_ids, out.mask_weights
    """
    ids = np.asarray(token_ids)
    tables = _special_tables(vocab_size, special_ids)
    candidates = ~tables.is_special[ids]
    starts = _group_starts(candidates, word_starts, config.whole_word_mask)
    num = int(_num_to_predict(int(candidates.sum()), config))

    word_of = np.cumsum(starts) - 1  # the group each candidate token is in
    lengths = np.bincount(word_of[candidates], minlength=int(starts.sum()))
    chosen = np.zeros(len(lengths), bool)
    count = 0
    for word in rng.permutation(len(lengths)):
        if count >= num:
            break
        if count + lengths[word] > num:
            continue  # Google skips a word that would overshoot
        chosen[word] = True
        count += lengths[word]
    selected = candidates & chosen[np.maximum(word_of, 0)]
    positions = np.flatnonzero(selected)

    pool = tables.replacements
    draw = rng.random(len(positions))
    random_ids = pool[rng.integers(len(pool), size=len(positions))]
    originals = ids[positions]
    masked = ids.copy()
    masked[positions] = np.where(
        draw < 0.8, mask_id, np.where(draw < 0.9, random_ids, originals)
    )
    out = MaskedTokens(
        masked,
        np.zeros(config.max_predictions_per_seq, np.int32),
        np.zeros(config.max_predictions_per_seq, np.int32),
        np.zeros(config.max_predictions_per_seq, np.float32),
    )
    out.mask_positions[:len(positions)] = positions
    out.mask_ids[:len(positions)] = originals
    out.mask_weights[:len(positions)] = 1.0
    return out


def _group_starts(candidates, word_starts, whole_word):
    if not whole_word:
        return candidates
    if word_starts is None:
        raise KbertError("whole_word_mask needs word_starts")
    previous = np.concatenate([[False], candidates[:-1]])
    return candidates & (np.asarray(word_starts, bool) | ~previous)


def mask_tokens_tf(token_ids, config, seed, vocab_size, special_ids, mask_id, word_starts=None):
    """`mask_tokens` for a batch, in TensorFlow ops (for `tf.data` maps).

    Same selection rule and 80/10/10 replacement as `mask_tokens`, drawn with
    stateless random ops, so the result depends only on the inputs and `seed`
    (reproducible in a parallel map). The greedy whole-word selection, a
    sequential loop in Google's code, runs as a few vectorized rounds: take the
    longest prefix of the remaining words (in random order) that fits, then
    drop every remaining word longer than what is left; each round gives
    exactly what the loop would.

    Args:
        token_ids: int32 `[batch, seq_len]`, padded with an id in `special_ids`.
        config: a `PretrainingConfig`.
        seed: int tensor of shape `[2]`, the stateless random seed.
        vocab_size, special_ids, mask_id: as for `mask_tokens`.
        word_starts: bool `[batch, seq_len]`, needed with `whole_word_mask`.

    Returns:
        A `MaskedTokens` of tensors: int32 `[batch, seq_len]` masked ids, and
        `[batch, max_predictions_per_seq]` positions, ids and float32 weights.
    """
    ids = tf.convert_to_tensor(token_ids, tf.int32)
    tables = _special_tables(vocab_size, special_ids)
    candidates = ~tf.gather(tf.constant(tables.is_special), ids)
    starts = candidates
    if config.whole_word_mask:
        if word_starts is None:
            raise KbertError("whole_word_mask needs word_starts")
        previous = tf.pad(candidates[:, :-1], [[0, 0], [1, 0]])
        starts = candidates & (tf.cast(word_starts, tf.bool) | ~previous)
    seeds = tf.random.experimental.stateless_split(seed, 4)

    batch, length = tf.shape(ids)[0], tf.shape(ids)[1]
    num_candidates = tf.reduce_sum(tf.cast(candidates, tf.int32), axis=1)
    num = tf.round(tf.cast(num_candidates, tf.float64) * config.masked_lm_prob)
    num = tf.minimum(tf.cast(tf.maximum(num, 1.0), tf.int32), config.max_predictions_per_seq)
    num = tf.minimum(num, num_candidates)

    # Group g of a row is its g-th word; lengths[b, g] counts its tokens.
    word_of = tf.maximum(tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1, 0)
    num_words = tf.reduce_sum(tf.cast(starts, tf.int32), axis=1)
    segments = word_of + length * tf.range(batch)[:, tf.newaxis]
    lengths = tf.math.unsorted_segment_sum(
        tf.cast(candidates, tf.int32), segments, batch * length
    )
    lengths = tf.reshape(lengths, [batch, length])
    is_word = tf.range(length)[tf.newaxis, :] < num_words[:, tf.newaxis]

    # Visit words in random order: sort random keys, non-words last.
    keys = tf.random.stateless_uniform([batch, length], seeds[0])
    order = tf.argsort(tf.where(is_word, keys, 2.0), axis=1, stable=True)
    sorted_lengths = tf.gather(lengths, order, batch_dims=1)
    sorted_valid = tf.gather(is_word, order, batch_dims=1)
    chosen_sorted = _greedy_select(sorted_lengths, sorted_valid, num)
    chosen = tf.gather(chosen_sorted, tf.argsort(order, axis=1), batch_dims=1)
    selected = candidates & tf.gather(chosen, word_of, batch_dims=1)

    positions = tf.ragged.boolean_mask(
        tf.broadcast_to(tf.range(length), [batch, length]), selected
    )
    shape = [None, config.max_predictions_per_seq]
    mask_positions = positions.to_tensor(0, shape=shape)
    mask_weights = tf.ones_like(positions, tf.float32).to_tensor(0.0, shape=shape)
    mask_ids = tf.gather(ids, mask_positions, batch_dims=1) * tf.cast(mask_weights, tf.int32)

    pool = tf.constant(tables.replacements)
    draw = tf.random.stateless_uniform([batch, length], seeds[1])
    random_ids = tf.gather(
        pool,
        tf.random.stateless_uniform(
            [batch, length], seeds[2], 0, int(pool.shape[0]), dtype=tf.int32
        ),
    )
    replaced = tf.where(draw < 0.8, mask_id, tf.where(draw < 0.9, random_ids, ids))
    masked = tf.where(selected, replaced, ids)
    return MaskedTokens(masked, mask_positions, mask_ids, mask_weights)


def _greedy_select(lengths, valid, num):
    """Google's loop "for each word: take it if it still fits", vectorized.

    Each round takes the longest run of open words (in order) whose total
    fits, then closes every open word longer than what is left: they can never
    fit, since what is left only shrinks. The first open word after the run is
    among them, so every round makes progress; it ends in at most 1 + the
    longest word's length rounds (2 for single tokens).
    """

    def more(count, closed, chosen):
        return tf.reduce_any(valid & ~closed)

    def step(count, closed, chosen):
        open_ = valid & ~closed
        left = (num - count)[:, tf.newaxis]
        total = tf.cumsum(tf.where(open_, lengths, 0), axis=1)
        take = open_ & (total <= left)
        count += tf.reduce_sum(tf.where(take, lengths, 0), axis=1)
        left = (num - count)[:, tf.newaxis]
        closed |= take | (open_ & (lengths > left))
        return count, closed, chosen | take

    _, _, chosen = tf.while_loop(
        more, step, (tf.zeros_like(num), tf.zeros_like(valid), tf.zeros_like(valid))
    )
    return chosen


# --- TFRecords ------------------------------------------------------------------------


def _feature_spec(config):
    seq, pred = config.seq_len, config.max_predictions_per_seq
    return {
        "token_ids": tf.io.FixedLenFeature([seq], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([seq], tf.int64),
        "padding_mask": tf.io.FixedLenFeature([seq], tf.int64),
        "mask_positions": tf.io.FixedLenFeature([pred], tf.int64),
        "mask_ids": tf.io.FixedLenFeature([pred], tf.int64),
        "mask_weights": tf.io.FixedLenFeature([pred], tf.float32),
        "nsp_label": tf.io.FixedLenFeature([1], tf.int64),
    }


def _int_feature(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def _serialize(instance, masked, seq_len):
    n = len(masked.token_ids)
    pad = [0] * (seq_len - n)
    feature = {
        "token_ids": _int_feature(masked.token_ids.tolist() + pad),
        "segment_ids": _int_feature(instance["segment_ids"].tolist() + pad),
        "padding_mask": _int_feature([1] * n + pad),
        "mask_positions": _int_feature(masked.mask_positions.tolist()),
        "mask_ids": _int_feature(masked.mask_ids.tolist()),
        "mask_weights": tf.train.Feature(
            float_list=tf.train.FloatList(value=masked.mask_weights.tolist())
        ),
        "nsp_label": _int_feature([instance["nsp_label"]]),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    # Features is a protobuf map, whose default serialization order varies
    # between processes; deterministic=True sorts it (same seed, same bytes).
    return example.SerializeToString(deterministic=True)


def write_tfrecords(
    paths,
    tokenizer,
    out_dir,
    config=None,
    num_shards=8,
    progress=True,
    split_sentences=False,
    holdout=0.0,
    split="train",
    compression="GZIP",
):
    """Write masked pre-training examples to TFRecord shards (Google's mode).

    Streams the files `config.dupe_factor` times (re-reading them, so memory
    stays flat), each pass with new pairs and masks; examples go round-robin
    into `num_shards` files `pretrain-00000-of-000NN.tfrecord` in `out_dir`,
    with `pretrain_data.json` describing them (config, vocab size and sha256,
    counts, seed). Everything is written into a temporary directory renamed to
    `out_dir` only when complete; an existing `out_dir` is replaced. The same
    inputs, tokenizer and config give byte-identical files.

    Each example has int64 features `token_ids`, `segment_ids`, `padding_mask`
    (`[seq_len]`), `mask_positions`, `mask_ids` (`[max_predictions_per_seq]`),
    `nsp_label` (`[1]`) and float `mask_weights`. `token_ids` are the masked ids.

    Args:
        paths: text files or glob patterns (see `read_documents`).
        tokenizer: a `kbert.BertTokenizer`.
        out_dir: the output directory.
        config: a `PretrainingConfig`.
        num_shards: number of TFRecord files.
        progress: show a progress bar over the input bytes.
        split_sentences: the input is paragraphs (see `read_documents`).
        holdout, split: hold out documents (see `read_documents`); write the
            "train" side for training and the "heldout" side, with the same
            `holdout`, for evaluation.
        compression: "GZIP" (default) or None. GZIP makes the files about 3x
            smaller and costs nothing when writing; reading is ~25% slower
            (about 30k instead of 40k examples/s on 2 CPUs, still far more than
            a training step consumes).

    Returns:
        The `pretrain_data.json` contents as a dict.

    Raises:
        DataError: unreadable input (naming the file and line), no text, or a
            single document.

    Examples:

    >>> write_tfrecords("corpus/*.txt", tokenizer, "runs/data", PretrainingConfig())
    >>> ds = tfrecord_dataset("runs/data", batch_size=32)
    """
    import tqdm

    config = config or PretrainingConfig()
    files = expand_paths(paths)
    _check_split(holdout, split)
    if isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1:
        raise KbertError(f"num_shards: expected a positive integer, got {num_shards!r}")
    if compression not in ("GZIP", None):
        raise KbertError(f"compression: expected 'GZIP' or None, got {compression!r}")
    vocab = _Vocab(tokenizer)
    rng = np.random.default_rng(config.seed)
    names = [SHARD_NAME.format(i, num_shards) for i in range(num_shards)]
    per_pass = sum(os.path.getsize(f) for f in files)
    counts = collections.Counter()
    written = collections.Counter()

    bar = tqdm.tqdm(
        total=per_pass * config.dupe_factor, unit="B", unit_scale=True,
        desc="pretraining data", disable=not progress,
    )
    try:
        with atomic_dir(out_dir) as tmp:
            options = tf.io.TFRecordOptions(compression_type=compression or "")
            writers = [tf.io.TFRecordWriter(os.path.join(tmp, n), options) for n in names]
            try:
                for dupe in range(config.dupe_factor):
                    documents = _documents(files, split_sentences, holdout, split, bar.update)
                    tokenized = _tokenize_documents(
                        documents, tokenizer, counts if dupe == 0 else None
                    )
                    try:
                        for instance in _instances(tokenized, config, rng, vocab):
                            masked = mask_tokens(
                                instance["token_ids"], config, rng, vocab.size, vocab.special_ids,
                                vocab.mask_id, instance["word_starts"],
                            )
                            k = written["instances"] % num_shards
                            writers[k].write(_serialize(instance, masked, config.seq_len))
                            written["instances"] += 1
                            written["tokens"] += len(instance["token_ids"])
                            written["predictions"] += int(masked.mask_weights.sum())
                            written["random_next"] += instance["nsp_label"]
                    except _OneDocumentError as e:
                        where = ", ".join(files) + (f" ({split} split)" if holdout else "")
                        raise DataError(f"{where}: {e}") from None
                    if not written["instances"]:
                        what = "no text" if split == "train" else "no held-out documents"
                        raise DataError(
                            f"{', '.join(files)}: {what} to make pre-training data from"
                        )
            finally:
                for writer in writers:
                    writer.close()
            info = {
                "format": DATA_FORMAT,
                "version": DATA_VERSION,
                "config": config.to_dict(),
                "seed": config.seed,
                "vocab_size": vocab.size,
                "vocab_sha256": vocab.sha256,
                "lowercase": bool(tokenizer.lowercase),
                "inputs": files,
                "split_sentences": bool(split_sentences),
                "holdout": holdout,
                "split": split,
                "compression": compression,
                "files": names,
                "counts": {
                    "documents": counts["documents"],
                    "sentences": counts["sentences"],
                    "input_tokens": counts["tokens"],
                    "instances": written["instances"],
                    "instance_tokens": written["tokens"],
                    "predictions": written["predictions"],
                    "random_next": written["random_next"],
                },
            }
            with open(os.path.join(tmp, DATA_INFO), "w", encoding="utf-8") as f:
                json.dump(info, f, indent=2)
                f.write("\n")
    finally:
        bar.close()
    return info


def read_data_info(path):
    """Read and check `pretrain_data.json` of a `write_tfrecords` directory.

    Returns:
        The JSON as a dict, with `config` turned into a `PretrainingConfig`.
        `vocab_size` and `vocab_sha256` (of the vocabulary as a `vocab.txt`,
        one token per line) let a caller check the data against a model.

    Raises:
        DataError: the directory or its `pretrain_data.json` is missing or not
            ours, or a listed shard is missing.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise DataError(f"{path}: not a directory of pre-training data")
    info_path = os.path.join(path, DATA_INFO)
    if not os.path.exists(info_path):
        raise DataError(
            f"{path}: no {DATA_INFO}; not written by write_tfrecords (or incomplete)"
        )
    info = read_json(info_path)
    if not isinstance(info, dict) or info.get("format") != DATA_FORMAT:
        raise DataError(f"{info_path}: not a kbert pre-training data description")
    if info.get("version") != DATA_VERSION:
        raise DataError(
            f"{info_path}: version {info.get('version')!r} is not supported "
            f"(expected {DATA_VERSION})"
        )
    try:
        info["config"] = PretrainingConfig.from_dict(info.get("config"), f"{info_path}: config")
    except KbertError as e:
        raise DataError(str(e)) from None
    for name in info.get("files", []):
        if not os.path.isfile(os.path.join(path, name)):
            raise DataError(f"{path}: shard {name} listed in {DATA_INFO} is missing")
    return info


def _to_keras(features):
    """Feature dict -> Keras `(x, y, sample_weight)` for `BertPretrainer`."""
    x = {
        name: tf.cast(features[name], tf.int32)
        for name in ("token_ids", "segment_ids", "padding_mask", "mask_positions")
    }
    nsp = tf.reshape(tf.cast(features["nsp_label"], tf.int32), [-1])
    y = {"mlm": tf.cast(features["mask_ids"], tf.int32), "nsp": nsp}
    weights = {
        "mlm": tf.cast(features["mask_weights"], tf.float32),
        "nsp": tf.ones_like(nsp, tf.float32),
    }
    return x, y, weights


def tfrecord_dataset(path, batch_size, shuffle=True, seed=None, repeat=True, shuffle_buffer=10000):
    """Read a `write_tfrecords` directory as a Keras-ready dataset.

    Args:
        path: the directory written by `write_tfrecords`.
        batch_size: int. Incomplete last batches are dropped (fixed shapes for XLA).
        shuffle: shuffle the shard order and the examples (through a buffer of
            `shuffle_buffer`), anew each epoch.
        seed: seed of the shuffling; None for a random one.
        repeat: repeat forever (use `steps_per_epoch` in `fit`).
        shuffle_buffer: examples in the shuffle buffer.

    Returns:
        A `tf.data.Dataset` of `(x, y, sample_weight)`: x = dict of int32
        `token_ids`, `segment_ids`, `padding_mask` `[batch, seq_len]` and
        `mask_positions` `[batch, max_predictions_per_seq]`; y = {"mlm": int32
        original ids at the masked positions, "nsp": int32 `[batch]` label};
        sample_weight = {"mlm": float32 mask weights, "nsp": float32 ones}.

    Raises:
        DataError: `path` is not a complete `write_tfrecords` directory.

    Examples:

    >>> ds = tfrecord_dataset("runs/data", batch_size=32, seed=0)
    >>> model.fit(ds, steps_per_epoch=1000, epochs=10)
    """
    info = read_data_info(path)
    _check_batch_size(batch_size)
    config = info["config"]
    files = [os.path.join(os.fspath(path), name) for name in info["files"]]
    compression = info.get("compression") or ""
    spec = _feature_spec(config)

    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed)
    ds = ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
        cycle_length=min(len(files), 16),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(
        lambda records: _to_keras(tf.io.parse_example(records, spec)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise KbertError(f"batch_size: expected a positive integer, got {batch_size!r}")


# --- dynamic masking -----------------------------------------------------------------


class _GeneratorGuard:
    """Lets `dynamic_dataset` pipelines wind down before Python exits.

    tf.data calls a generator from its own threads, ahead of the consumer. A
    thread that calls into Python once the interpreter is shutting down is
    terminated on the spot, and the iterator's destructor then waits for it
    forever (tensorflow#22632; we saw ~1 exit in 5 hang). So at exit, while
    Python still runs normally, we make every generator step end its
    generator at once, which takes the pipeline to its end, and wait until
    tf.data has stopped calling.
    """

    QUIET = 0.25  # seconds without a step after which the pipelines are idle

    def __init__(self):
        self._changed = threading.Condition()
        self._running = 0
        self._last = 0.0
        self._stopping = False

    @contextlib.contextmanager
    def step(self):
        with self._changed:
            self._last = time.monotonic()
            if self._stopping:
                yield False
                return
            self._running += 1
        try:
            yield True
        finally:
            with self._changed:
                self._running -= 1
                self._last = time.monotonic()
                self._changed.notify_all()

    def stop(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        with self._changed:
            self._stopping = True
            while time.monotonic() < deadline:
                idle = time.monotonic() - self._last
                if self._running == 0 and idle >= self.QUIET:
                    return
                self._changed.wait(max(self.QUIET - idle, 0.01))


_GENERATORS = _GeneratorGuard()
atexit.register(_GENERATORS.stop)


_GENERATOR_CHUNK = 256


def _pad_chunk(instances, seq_len, pad_id):
    token_ids = np.full((len(instances), seq_len), pad_id, np.int32)
    segment_ids = np.zeros((len(instances), seq_len), np.int32)
    padding_mask = np.zeros((len(instances), seq_len), np.int32)
    for row, instance in enumerate(instances):
        n = len(instance["token_ids"])
        token_ids[row, :n] = instance["token_ids"]
        segment_ids[row, :n] = instance["segment_ids"]
        padding_mask[row, :n] = 1
    labels = np.array([i["nsp_label"] for i in instances], np.int32)
    return token_ids, segment_ids, padding_mask, labels


# Errors raised inside `dynamic_dataset`'s generator, newest last (one per failed
# pass, so the list stays tiny). TensorFlow reports them as an OpError.
_STREAM_ERRORS = []


@contextlib.contextmanager
def data_errors():
    """Re-raise a `DataError` met while a `dynamic_dataset` was read (a bad line
    deep in the corpus), which TensorFlow reports as a `tf.errors.OpError`
    quoting it, as the `DataError` itself.

    Examples:

    >>> with data_errors():
    ...     model.fit(dynamic_dataset("corpus/*.txt", tokenizer), steps_per_epoch=100)
    """
    import tensorflow as tf

    mark = len(_STREAM_ERRORS)
    try:
        yield
    except tf.errors.OpError:
        if len(_STREAM_ERRORS) > mark:
            raise _STREAM_ERRORS[-1] from None
        raise


def dynamic_dataset(
    paths,
    tokenizer,
    config=None,
    batch_size=32,
    seed=None,
    repeat=True,
    split_sentences=False,
    holdout=0.0,
    split="train",
    shuffle_buffer=1000,
):
    """Build instances on the fly and mask them in the `tf.data` graph.

    A Python generator streams the files through `create_instances` (one pass
    per epoch, each with new pairs); instances are shuffled through a buffer,
    padded into batches and masked with `mask_tokens_tf` in a parallel map.
    The masking seeds come from `tf.data.Dataset.random`, so every epoch (and
    every new iteration of the dataset) gets fresh masks while the whole stream
    is reproducible from `seed`. `config.dupe_factor` is not used: each epoch
    is a new duplicate.

    Args:
        paths: text files or glob patterns (see `read_documents`).
        tokenizer: a `kbert.BertTokenizer`.
        config: a `PretrainingConfig`.
        batch_size: int. Incomplete last batches are dropped.
        seed: seed of pairs, order and masks; None uses `config.seed`.
        repeat: repeat forever (use `steps_per_epoch` in `fit`).
        split_sentences, holdout, split: as for `read_documents`.
        shuffle_buffer: instances in the shuffle buffer.

    Returns:
        A `tf.data.Dataset` of `(x, y, sample_weight)` like `tfrecord_dataset`.

    Raises:
        DataError: a path is missing, empty or binary, or a pattern matches
            nothing. Errors met while reading (a bad line, no text at all)
            surface while iterating, as a `tf.errors` error quoting the
            `DataError` message; `data_errors()` turns them back into it.

    Examples:

    >>> ds = dynamic_dataset("corpus/*.txt", tokenizer, PretrainingConfig(), 32)
    >>> model.fit(ds, steps_per_epoch=1000, epochs=10)
    """
    config = config or PretrainingConfig()
    files = expand_paths(paths)
    _check_split(holdout, split)
    _check_batch_size(batch_size)
    seed = config.seed if seed is None else int(seed)
    vocab = _Vocab(tokenizer)
    epochs = [0]

    def chunks():
        # Each pass over the data gets its own stream of pairs. Instances go
        # out in padded chunks: from_generator costs ~0.7 ms per element, which
        # would make it the bottleneck (1.2k instead of 5k+ instances/s).
        rng = np.random.default_rng([seed, epochs[0]])
        epochs[0] += 1
        documents = _documents(files, split_sentences, holdout, split)
        stream = _instances(_tokenize_documents(documents, tokenizer), config, rng, vocab)
        count = 0
        while True:
            chunk = list(itertools.islice(stream, _GENERATOR_CHUNK))
            if not chunk:
                break
            count += len(chunk)
            yield _pad_chunk(chunk, config.seq_len, vocab.pad_id)
        if not count:
            raise DataError(f"{', '.join(files)}: no text to make pre-training data from")

    def generate():
        stream = chunks()
        while True:
            with _GENERATORS.step() as running:
                try:
                    item = next(stream, None) if running else None
                except KbertError as e:
                    _STREAM_ERRORS.append(e)
                    raise
            if item is None:
                return
            yield item

    matrix = tf.TensorSpec([None, config.seq_len], tf.int32)
    ds = tf.data.Dataset.from_generator(
        generate, output_signature=(matrix, matrix, matrix, tf.TensorSpec([None], tf.int32))
    )
    ds = ds.unbatch().shuffle(shuffle_buffer, seed=seed)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=True)
    # One int64 per batch; a new sequence on every iteration of the dataset.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip(ds, seeds)
    word_start = tf.constant(vocab.word_start)

    def mask(batch, batch_seed):
        token_ids, segment_ids, padding_mask, nsp_label = batch
        masked = mask_tokens_tf(
            token_ids, config, tf.stack([batch_seed, tf.constant(seed, tf.int64)]),
            vocab.size, vocab.special_ids, vocab.mask_id,
            tf.gather(word_start, token_ids) if config.whole_word_mask else None,
        )
        return _to_keras({
            "token_ids": masked.token_ids,
            "segment_ids": segment_ids,
            "padding_mask": padding_mask,
            "mask_positions": masked.mask_positions,
            "mask_ids": masked.mask_ids,
            "mask_weights": masked.mask_weights,
            "nsp_label": nsp_label,
        })

    ds = ds.map(mask, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
