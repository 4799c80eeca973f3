"""Next-sentence instances: documents to `[CLS] A [SEP] B [SEP]` pairs.

The recipe is Google's `create_instances_from_document` (google-research/bert
`create_pretraining_data.py`): pairing, the "put back" of unused sentences and
random front/back truncation follow Google's code. Instances come out
unmasked; `masking` masks them (in NumPy when written to TFRecords, in the
`tf.data` graph for the dynamic dataset).

Why not Google's script: it holds every tokenized document and every instance
in memory (it shuffles them all). We stream: documents are tokenized in large
batches (the tokenizer runs ~1.2M tokens/s on 1000+ sentences, ~250k/s on one
~50-sentence document) and only a window of `negatives_buffer` tokenized
documents is kept, from which random-next segments are drawn. Memory stays
flat however large the corpus; the price is that "random" documents come from
nearby in the stream rather than from the whole corpus, and that instances come
out in corpus order (the datasets shuffle them through buffers).

This module uses NumPy only; the tokenizer passed in brings TensorFlow.
"""

import collections
from typing import NamedTuple

import numpy as np

from kbert.data.pretraining.config import PretrainingConfig
from kbert.data.pretraining.vocab import Vocab
from kbert.errors import DataError

# Sentences tokenized per call (see the module docstring for why so many).
TOKENIZE_BATCH = 2048


class TokenizedDocument(NamedTuple):
    """A tokenized document: all ids in one array, sentence i is
    `ids[splits[i]:splits[i + 1]]` (two arrays per document instead of one per
    sentence keeps the negatives buffer small). `index` counts the non-empty
    documents of the stream from 0."""

    index: int
    ids: np.ndarray
    splits: np.ndarray

    @property
    def num_sentences(self):
        return len(self.splits) - 1


class OneDocumentError(DataError):
    """Raised without file names; callers that know them re-raise with them."""


def tokenize_documents(documents, tokenizer, counts=None):
    """Tokenize documents many at a time; yield `TokenizedDocument`s in order.

    Sentences with no tokens are dropped, and documents left empty with them,
    as Google does. `counts`, if given (e.g. a `collections.Counter`), gets
    "documents", "sentences" and "tokens" added up.
    """
    index = 0
    batch = []
    size = 0
    for document in documents:
        batch.append(document)
        size += len(document)
        if size >= TOKENIZE_BATCH:
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
        yield TokenizedDocument(index, ids, splits)
        index += 1


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
    vocab = Vocab(tokenizer)
    yield from instance_stream(tokenize_documents(documents, tokenizer), config, rng, vocab)


def instance_stream(tokenized, config, rng, vocab):
    """`create_instances` on `TokenizedDocument`s, with the `Vocab` given
    (built once by callers that also mask)."""
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


def _random_other_document(document, window, rng):
    if len(window) < 2:
        raise OneDocumentError(
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

    Examples:

    >>> a, b = truncate_pair(np.arange(10), np.arange(4), 8, np.random.default_rng(0))
    >>> len(a), len(b)
    (4, 4)
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
