"""Token classification (NER) data: CoNLL files to BERT windows and back.

`kbert finetune ner` trains a `BertTagger`, which predicts one label per word
piece. People tag words, though, so this module maps between the two:

* `read_conll` reads the CoNLL layout (one token per line, blank lines between
  sentences, `-DOCSTART-` lines skipped) into `Sentence`s.
* `detect_scheme` / `convert_tags` name and change the tag scheme (IOB1, IOB2,
  BIOES), `label_list` gives the label set.
* `encode_ner` tokenizes every word on its own and puts each word's label on
  its first piece only (weight 1 there, 0 on continuation pieces, `[CLS]`,
  `[SEP]` and padding), the usual BERT NER recipe. Sentences longer than
  `seq_len` are split into overlapping word-aligned windows instead of being
  cut, and every word is *owned* (scored) by exactly one window.
* `decode_ner` turns per-piece predictions back into one tag per word.
* `split_words` and `entities` (from `kbert.data.words`) serve `kbert predict`
  on raw text: words with character offsets, and entity spans sliced from the
  original text.

Why our own code: Hugging Face's `word_ids()` alignment needs its Python
(Rust) tokenizers, while kbert's tokenizer is tf-text's in-graph one and gives
no word ids; keras-hub has no token classification data pipeline; `seqeval`
(entity chunking) is not a dependency, and no library converts between tag
schemes. Word alignment here needs nothing but `BertTokenizer.tokenize` on
large batches of words and NumPy.

Entity chunks come from `kbert.metrics.entity_spans`, the same chunking the
NER scores use, with `seqeval`'s default (conlleval) semantics: an
entity starts at `B-`/`S-`, or at an `I-`/`E-` that follows `O`, a tag of
another type, or an `E-`/`S-`; it ends before a tag that starts a new entity or
is not its continuation. Scheme conversion goes through these chunks, so an
`I-` that starts an entity (legal in IOB1, a common model error in IOB2) is an
entity start, as in `seqeval` and `conlleval`.
"""

import bisect
import os
from typing import NamedTuple

import numpy as np

from kbert.errors import DataError, KbertError
from kbert.io import iter_text_lines
from kbert.metrics import entity_spans

SCHEMES = ("IOB1", "IOB2", "BIOES")
DOCSTART = "-DOCSTART-"

# Words tokenized per call: each call costs a few ms of fixed overhead.
_TOKENIZE_BATCH = 8192
_SCHEME_PREFIXES = {"IOB1": "BI", "IOB2": "BI", "BIOES": "BIES"}


class Sentence(NamedTuple):
    """One tagged sentence of a CoNLL file.

    Tokens of a sentence sit on consecutive lines, so token `i` was read from
    line `line + i` of `source`; error messages use that.

    Args:
        words: the tokens.
        tags: one tag per token (may be `None` for untagged text to predict on).
        line: 1-based line of the first token.
        source: the file it was read from (or any name for error messages).
    """

    words: list[str]
    tags: list[str]
    line: int
    source: str


# --- reading -----------------------------------------------------------------


def read_conll(path, tag_column=-1, word_column=0):
    """Read a CoNLL-style file of tagged tokens.

    One token per line, columns separated by whitespace; a blank line ends a
    sentence; `-DOCSTART-` lines (document breaks) are skipped, and so is the
    blank line after them. Extra columns (POS, chunk tags) are ignored; every
    token line has the same number of columns.

    Args:
        path: str or path-like. The file, UTF-8.
        tag_column: int. Column of the tag, Python-style (`-1` is the last
            column, the NER tag in CoNLL-2003).
        word_column: int. Column of the word.

    Returns:
        A list of `Sentence`s, in file order.

    Raises:
        DataError: the file is missing, empty, binary or not UTF-8, a line has
            too few columns for `word_column` and `tag_column` or not as many
            as the first token line (naming the file and line), or the file
            holds no sentence.
        KbertError: the columns are not integers or are the same column.

    Examples:

    >>> sentences = read_conll("conll2003/train.txt")
    >>> sentences[0].words[:3], sentences[0].tags[:3]
    (['EU', 'rejects', 'German'], ['B-ORG', 'O', 'B-MISC'])
    """
    path = os.fspath(path)
    for name, column in (("tag_column", tag_column), ("word_column", word_column)):
        if not isinstance(column, (int, np.integer)) or isinstance(column, bool):
            raise KbertError(f"{name}: expected an integer, got {column!r}")
    if tag_column == word_column:
        raise KbertError(f"word_column and tag_column are both {tag_column}")
    need = _columns_needed(word_column, tag_column)
    sentences = []
    words, tags, first = [], [], 0
    layout = None  # (columns, line) of the first token line

    for number, line in iter_text_lines(path):
        columns = line.split()
        if not columns or columns[0] == DOCSTART:
            if words:
                sentences.append(Sentence(words, tags, first, path))
            words, tags = [], []
            continue
        count = len(columns)
        if count < need:
            raise DataError(f"{path}:{number}: expected at least {need} columns, got {count}")
        if layout is None:
            layout = (count, number)
        elif count != layout[0]:
            # A line short of its tag column would read its chunk tag as the tag.
            raise DataError(f"{path}:{number}: {count} columns, but line {layout[1]} has {layout[0]}: "
                            "every token line needs the same columns")
        if word_column % count == tag_column % count:
            # Only a mixed-sign pair (e.g. 2 and -2) can meet, on one column count.
            raise DataError(
                f"{path}:{number}: word column {word_column} and tag column {tag_column} "
                f"are the same column on a line with {count} columns"
            )
        if not words:
            first = number
        words.append(columns[word_column])
        tags.append(columns[tag_column])
    if words:
        sentences.append(Sentence(words, tags, first, path))
    if not sentences:
        raise DataError(
            f"{path}: no sentences found (expected one token per line, "
            "blank lines between sentences)"
        )
    return sentences


def _columns_needed(word_column, tag_column):
    """Fewest columns a line needs so that both columns exist and differ."""
    need = max(c + 1 if c >= 0 else -c for c in (word_column, tag_column))
    if word_column % need == tag_column % need:
        need += 1
    return need


# --- tag schemes -------------------------------------------------------------


def _is_scheme_tag(tag, prefixes="BIES"):
    return tag == "O" or (len(tag) > 2 and tag[1] == "-" and tag[0] in prefixes)


def _check_scheme(scheme):
    name = str(scheme).upper()
    if name == "IOBES":
        name = "BIOES"
    if name not in SCHEMES:
        raise KbertError(f"unknown tag scheme {scheme!r} (choose {', '.join(SCHEMES)})")
    return name


def detect_scheme(tag_sequences):
    """Guess the tag scheme of tagged data.

    The rule:

    * `BIOES` if any tag starts with `E-` or `S-`;
    * else `IOB1` if some entity starts with `I-` (an `I-` after `O` or after a
      tag of another type) and every `B-` directly follows a tag of its own
      type (IOB1 uses `B-` only to separate two touching entities of one type);
    * else `IOB2` (every entity starts with `B-`). Data with no entities, and
      data mixing `I-` starts with `B-` starts, count as IOB2; their chunks are
      the same in both readings except at the stray `I-`s.

    Args:
        tag_sequences: an iterable of tag lists, or of `Sentence`s (then errors
            name the file and line).

    Returns:
        "IOB1", "IOB2" or "BIOES".

    Raises:
        DataError: (for `Sentence`s) a tag is neither `O` nor a `B-`, `I-`,
            `E-` or `S-` prefix followed by a type.
        KbertError: the same, for plain tag lists.

    Examples:

    >>> detect_scheme([["I-PER", "I-PER", "O", "I-LOC", "B-LOC"]])
    'IOB1'
    >>> detect_scheme([["B-PER", "I-PER", "O"]])
    'IOB2'
    """
    has_end = i_start = b_start = False
    for k, sequence in enumerate(tag_sequences):
        tags = sequence.tags if isinstance(sequence, Sentence) else sequence
        prev_prefix, prev_type = "O", None
        for i, tag in enumerate(tags):
            if not _is_scheme_tag(tag):
                if isinstance(sequence, Sentence):
                    raise DataError(
                        f"{sequence.source}:{sequence.line + i}: tag {tag!r} is not O or "
                        "B-/I-/E-/S- followed by a type"
                    )
                raise KbertError(
                    f"sequence {k}, tag {i}: {tag!r} is not O or B-/I-/E-/S- followed by a type"
                )
            prefix, kind = tag[0], tag[2:]
            continues = prev_prefix != "O" and prev_type == kind
            has_end |= prefix in "ES"
            i_start |= prefix == "I" and not continues
            b_start |= prefix == "B" and not continues
            prev_prefix, prev_type = prefix, kind
    if has_end:
        return "BIOES"
    if i_start and not b_start:
        return "IOB1"
    return "IOB2"


def convert_tags(tags, source, target):
    """Convert one sentence's tags between IOB1, IOB2 and BIOES.

    The tags are read into entity chunks (seqeval semantics, see the module
    docstring) and written out in the target scheme. IOB1 writes `B-` only at
    an entity that directly follows one of the same type. Converting to the
    same scheme returns the tags unchanged.

    Args:
        tags: list of str, tags in the `source` scheme.
        source: "IOB1", "IOB2" or "BIOES" (case-insensitive; "IOBES" is BIOES).
        target: the scheme to convert to.

    Returns:
        A new list of tags, as long as `tags`.

    Raises:
        KbertError: an unknown scheme, or a tag the source scheme does not have
            (e.g. `E-PER` in IOB2).

    Examples:

    >>> convert_tags(["I-PER", "I-PER", "B-PER", "O"], "IOB1", "IOB2")
    ['B-PER', 'I-PER', 'B-PER', 'O']
    >>> convert_tags(["B-PER", "I-PER", "B-LOC"], "IOB2", "BIOES")
    ['B-PER', 'E-PER', 'S-LOC']
    """
    source, target = _check_scheme(source), _check_scheme(target)
    tags = list(tags)
    for i, tag in enumerate(tags):
        if not isinstance(tag, str) or not _is_scheme_tag(tag, _SCHEME_PREFIXES[source]):
            raise KbertError(f"tag {i}: {tag!r} is not a valid {source} tag")
    if source == target:
        return tags
    out = ["O"] * len(tags)
    prev_end, prev_type = -1, None
    for kind, start, end in entity_spans(tags):
        if target == "BIOES" and end - start == 1:
            out[start] = f"S-{kind}"
            continue
        out[start:end] = [f"I-{kind}"] * (end - start)
        if target == "IOB2" or target == "BIOES":
            out[start] = f"B-{kind}"
        elif start == prev_end and kind == prev_type:
            out[start] = f"B-{kind}"
        if target == "BIOES":
            out[end - 1] = f"E-{kind}"
        prev_end, prev_type = end, kind
    return out


def label_list(sentences):
    """All tags of `sentences`, sorted, with "O" first when present.

    Args:
        sentences: iterable of `Sentence`s.

    Returns:
        A list of str; a tag's position is its label id.

    Examples:

    >>> label_list([Sentence(["Ann", "ran"], ["B-PER", "O"], 1, "x")])
    ['O', 'B-PER']
    """
    names = {tag for s in sentences for tag in s.tags}
    rest = sorted(names - {"O"})
    return ["O", *rest] if "O" in names else rest


# --- encoding ----------------------------------------------------------------


def encode_ner(sentences, tokenizer, label_ids, seq_len=128, stride=None):
    """Turn tagged sentences into fixed-length BERT token classification inputs.

    Every word is tokenized on its own (all words in a few large batched calls);
    its tag goes on its first word piece. A word that gives no piece at all
    (e.g. only control characters) gets one `[UNK]`, so every word has a first
    piece. A word with more pieces than fit in a window (`seq_len - 2`) is
    truncated to the pieces that fit; its first piece, the one that carries the
    label, is always kept.

    A sentence whose pieces do not fit in `seq_len - 2` is split into several
    windows, `[CLS] pieces [SEP]` each, cut only between words. Consecutive
    windows overlap by at most `stride` pieces (whole words, as many as fit;
    fewer when the next word would not fit otherwise). Each word is owned by
    exactly one window, the only one where it gets weight 1 and a `word_index`:
    the words of an overlap are shared out half and half (the earlier window
    owns the first half), so an owned word near a window edge keeps about
    `stride / 2` pieces of context on that side.

    Args:
        sentences: list of `Sentence`s.
        tokenizer: a `kbert.tokenization.BertTokenizer`.
        label_ids: dict mapping each tag to its label id, e.g.
            `{t: i for i, t in enumerate(label_list(sentences))}`. `None` for
            untagged text (prediction): tags are not read and labels are 0.
        seq_len: int, at least 3. Length of every row.
        stride: int in `[0, seq_len - 3]`. Overlap of consecutive windows, in
            word pieces. Defaults to `seq_len // 4`.

    Returns:
        A dict of NumPy arrays, one row per window (`n` rows):
        `token_ids`, `segment_ids` (all 0), `padding_mask` (int32 `[n, seq_len]`);
        `labels` (int32 `[n, seq_len]`: a word's tag id at its first piece in its
        owning window, 0 elsewhere); `label_weights` (float32 `[n, seq_len]`: 1
        where `labels` holds a word's tag, 0 elsewhere); `sentence_index`
        (int32 `[n]`: the sentence of each row; a sentence with no words has no
        row); `word_index` (int32 `[n, seq_len]`: the word's index in its
        sentence at the first pieces of owned words, -1 elsewhere).

    Raises:
        DataError: a tag not in `label_ids` (naming `source:line` of the token),
            or a sentence with a different number of words and tags.
        KbertError: `seq_len` or `stride` out of range.

    Examples:

    >>> labels = label_list(sentences)
    >>> features = encode_ner(sentences, tokenizer, {t: i for i, t in enumerate(labels)})
    >>> x = {k: features[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    >>> model.fit(x, features["labels"], sample_weight=features["label_weights"])
    """
    if not isinstance(seq_len, (int, np.integer)) or isinstance(seq_len, bool) or seq_len < 3:
        raise KbertError(f"seq_len: expected an integer >= 3, got {seq_len!r}")
    budget = int(seq_len) - 2
    if stride is None:
        stride = seq_len // 4
    if (
        not isinstance(stride, (int, np.integer))
        or isinstance(stride, bool)
        or not 0 <= stride < budget
    ):
        raise KbertError(f"stride: expected an integer in [0, {budget - 1}], got {stride!r}")
    sentences = list(sentences)

    # Tags first: a bad tag should fail before the slow part.
    tag_ids = []
    for s in sentences:
        if label_ids is None:
            tag_ids.extend([0] * len(s.words))
            continue
        if len(s.tags) != len(s.words):
            raise DataError(f"{s.source}:{s.line}: {len(s.words)} words but {len(s.tags)} tags")
        for i, tag in enumerate(s.tags):
            tag_id = label_ids.get(tag)
            if tag_id is None:
                known = ", ".join(sorted(label_ids))
                raise DataError(f"{s.source}:{s.line + i}: unknown tag {tag!r} (known: {known})")
            tag_ids.append(tag_id)
    tag_ids = np.asarray(tag_ids, np.int32)

    words = [w for s in sentences for w in s.words]
    pieces, counts = _word_pieces(tokenizer, words)
    # Truncate over-long words to their first `budget` pieces.
    kept = np.minimum(counts, budget)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    within = np.arange(len(pieces)) - np.repeat(starts, counts)
    pieces = pieces[within < np.repeat(kept, counts)]
    # piece_start[g]: where word g's pieces begin in `pieces`; one extra end entry.
    piece_start = np.concatenate([[0], np.cumsum(kept)]).astype(np.int64)

    sizes = [len(s.words) for s in sentences]
    word_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    windows = []
    for si in range(len(sentences)):
        g0, g1 = word_start[si], word_start[si + 1]
        if g0 == g1:
            continue
        if piece_start[g1] - piece_start[g0] <= budget:
            windows.append((si, 0, g1 - g0, 0, g1 - g0))
        else:
            windows.extend((si, *w) for w in _windows(kept[g0:g1].tolist(), budget, stride))

    n = len(windows)
    token_ids = np.full((n, seq_len), tokenizer.pad_id, np.int32)
    padding_mask = np.zeros((n, seq_len), np.int32)
    labels = np.zeros((n, seq_len), np.int32)
    weights = np.zeros((n, seq_len), np.float32)
    word_index = np.full((n, seq_len), -1, np.int32)
    sentence_index = np.zeros(n, np.int32)
    for r, (si, a, e, own_a, own_e) in enumerate(windows):
        g0 = word_start[si]
        p0, p1 = piece_start[g0 + a], piece_start[g0 + e]
        length = p1 - p0
        token_ids[r, 0] = tokenizer.cls_id
        token_ids[r, 1 : length + 1] = pieces[p0:p1]
        token_ids[r, length + 1] = tokenizer.sep_id
        padding_mask[r, : length + 2] = 1
        owned = np.arange(g0 + own_a, g0 + own_e)
        positions = piece_start[owned] - p0 + 1
        labels[r, positions] = tag_ids[owned]
        weights[r, positions] = 1.0
        word_index[r, positions] = owned - g0
        sentence_index[r] = si
    return {
        "token_ids": token_ids,
        "segment_ids": np.zeros((n, seq_len), np.int32),
        "padding_mask": padding_mask,
        "labels": labels,
        "label_weights": weights,
        "sentence_index": sentence_index,
        "word_index": word_index,
    }


def _word_pieces(tokenizer, words):
    """Piece ids of each word: (flat ids, per-word counts), every count >= 1."""
    ids, lengths = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for i in range(0, len(words), _TOKENIZE_BATCH):
        ragged = tokenizer.tokenize(words[i : i + _TOKENIZE_BATCH])
        ids.append(ragged.flat_values.numpy())
        lengths.append(ragged.row_lengths().numpy())
    ids, lengths = np.concatenate(ids), np.concatenate(lengths)
    if lengths.all():
        return ids, lengths
    # A word with no piece gets one [UNK]: shift the others' pieces to make room.
    counts = np.maximum(lengths, 1)
    old_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    new_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.full(int(counts.sum()), tokenizer.unk_id, np.int64)
    out[np.repeat(new_start - old_start, lengths) + np.arange(len(ids))] = ids
    return out, counts


def _windows(counts, budget, stride):
    """Word-aligned windows of one sentence: [(start, end, own_start, own_end)].

    `counts` are the words' piece counts (each in [1, budget]). A window holds
    as many words as fit in `budget` pieces; the next one starts at the first
    word of the trailing run of whole words that has at most
    `min(stride, budget - counts[end])` pieces (so that it also takes word
    `end` and always moves on), and the overlap is owned half by each.
    """
    ends = [0]
    for c in counts:
        ends.append(ends[-1] + c)
    n = len(counts)
    out = []
    start, own = 0, 0
    while True:
        end = bisect.bisect_right(ends, ends[start] + budget) - 1
        if end == n:
            out.append((start, n, own, n))
            return out
        limit = min(stride, budget - counts[end])
        following = bisect.bisect_left(ends, ends[end] - limit, start + 1, end)
        next_own = max(own + 1, (following + end + 1) // 2)
        out.append((start, end, own, next_own))
        start, own = following, next_own


def decode_ner(predicted_ids, features, sentences, labels):
    """Per-piece predictions back to one tag per word.

    Each word takes the prediction at its first piece in the window that owns
    it (see `encode_ner`). Tags are returned as predicted, invalid sequences
    (an `I-` after `O`) included; `entities` reads those the seqeval way.

    Args:
        predicted_ids: int array `[n, seq_len]`, e.g. the argmax of the
            tagger's logits (logits `[n, seq_len, num_labels]` are also
            accepted and reduced with argmax).
        features: `encode_ner`'s output for `sentences` (only `word_index`
            and `sentence_index` are used).
        sentences: the `Sentence`s that were encoded.
        labels: list of tag names, indexed by label id.

    Returns:
        A list with one list of tags per sentence, as long as its words.

    Raises:
        KbertError: the shapes do not match, a predicted id is not a label id,
            or the features do not cover every word of `sentences`.

    Examples:

    >>> logits = model.predict(x)
    >>> tags = decode_ner(logits.argmax(-1), features, sentences, labels)
    """
    predicted = np.asarray(predicted_ids)
    if predicted.ndim == 3:
        predicted = predicted.argmax(-1)
    word_index = np.asarray(features["word_index"])
    sentence_index = np.asarray(features["sentence_index"])
    if predicted.shape != word_index.shape or len(sentence_index) != len(word_index):
        raise KbertError(
            f"predicted ids have shape {predicted.shape}, features have word_index "
            f"{word_index.shape} and {len(sentence_index)} rows"
        )
    rows, cols = np.nonzero(word_index >= 0)
    ids = predicted[rows, cols]
    if ids.size and (ids.min() < 0 or ids.max() >= len(labels)):
        raise KbertError(
            f"predicted ids must be in [0, {len(labels)}), got {ids.min()}..{ids.max()}"
        )
    tags = [[None] * len(s.words) for s in sentences]
    places = zip(sentence_index[rows].tolist(), word_index[rows, cols].tolist(), ids.tolist())
    for si, wi, label in places:
        if si >= len(tags) or wi >= len(tags[si]):
            raise KbertError(
                f"features point at sentence {si}, word {wi}, which the sentences do not have"
            )
        tags[si][wi] = labels[label]
    for si, sentence_tags in enumerate(tags):
        if None in sentence_tags:
            raise KbertError(
                f"no prediction for sentence {si}, word {sentence_tags.index(None)}: "
                "were the features made by encode_ner from these sentences?"
            )
    return tags
