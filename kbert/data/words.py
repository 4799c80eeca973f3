"""Raw text to words with character offsets, and entity spans back to text.

`kbert predict` and NER serving tag raw text: `split_words` cuts it into the
words BERT's basic tokenizer would see (so the tagger's word-level labels map
back to exact character offsets), and `entities` slices the tagged spans from
the original string. Chunking is `kbert.metrics.entity_spans`, the same as the
NER scores (seqeval's default semantics, see `kbert.data.ner`).
"""

import unicodedata

from kbert.errors import KbertError
from kbert.metrics import entity_spans


def _is_whitespace(ch):
    # BERT's whitespace (tab, newline, return, Zs), plus the line and paragraph
    # separators (Zl, Zp), which kbert's tokenizer also splits on.
    return ch in " \t\n\r" or unicodedata.category(ch)[0] == "Z"


def _is_dropped(ch):
    # What the tokenizer's text cleaning deletes (see kbert.tokenization.clean_text).
    return ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs")


def _is_punctuation(ch):
    # BERT's _is_punctuation: all ASCII non-alphanumeric symbols, and Unicode P*.
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(ch):
    # BERT's _is_chinese_char: CJK Unified Ideographs blocks (not kana or hangul).
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def split_words(text):
    """Split raw text into words the way BERT's basic tokenizer does.

    Whitespace separates words; every punctuation character (Unicode `P*` and
    all ASCII symbols, as in BERT's `_is_punctuation`) and every CJK ideograph
    is a word of its own. Characters the tokenizer deletes (control and format
    characters such as a zero-width space, U+FFFD) are trimmed from the ends of
    words, and words made only of them are dropped; inside a word they stay,
    as BERT joins the parts around them. Emoji and other symbols (`S*`) are
    not punctuation and stay part of their word, as in BERT.

    Tokenizing the words one by one gives the same pieces as tokenizing the
    whole text.

    Args:
        text: str.

    Returns:
        A list of `(word, start, end)`: `text[start:end] == word`, offsets in
        Python characters (code points).

    Examples:

    >>> split_words("Hi, Zoë!")
    [('Hi', 0, 2), (',', 2, 3), ('Zoë', 4, 7), ('!', 7, 8)]
    """
    words = []
    start = None

    def close(end):
        if start is None:
            return
        first, last = start, end
        while first < last and _is_dropped(text[first]):
            first += 1
        while last > first and _is_dropped(text[last - 1]):
            last -= 1
        if first < last:
            words.append((text[first:last], first, last))

    for i, ch in enumerate(text):
        if _is_whitespace(ch):
            close(i)
            start = None
        elif _is_punctuation(ch) or _is_cjk(ch):
            close(i)
            start = None
            words.append((ch, i, i + 1))
        elif start is None:
            start = i
    close(len(text))
    return words


def entities(words_with_offsets, tags, text):
    """Entity spans of tagged words, with their text.

    Chunks follow seqeval's default semantics (see the module docstring), so
    any of the three schemes, and model output with stray `I-` starts, works.

    Args:
        words_with_offsets: `split_words(text)`'s output.
        tags: one tag per word.
        text: the original string the offsets point into.

    Returns:
        A list of dicts `{"type", "text", "start", "end", "words"}`: the entity
        type, `text[start:end]` (character offsets, from the first word's start
        to the last word's end) and `words`, the `[first, last + 1)` word range.

    Raises:
        KbertError: `tags` and `words_with_offsets` differ in length.

    Examples:

    >>> text = "Ann lives in New York."
    >>> words = split_words(text)
    >>> entities(words, ["B-PER", "O", "O", "B-LOC", "I-LOC", "O"], text)[1]
    {'type': 'LOC', 'text': 'New York', 'start': 13, 'end': 21, 'words': [3, 5]}
    """
    tags = list(tags)
    if len(tags) != len(words_with_offsets):
        raise KbertError(f"got {len(tags)} tags for {len(words_with_offsets)} words")
    out = []
    for kind, first, last in entity_spans(tags):
        start, end = words_with_offsets[first][1], words_with_offsets[last - 1][2]
        out.append(
            {
                "type": kind,
                "text": text[start:end],
                "start": start,
                "end": end,
                "words": [first, last],
            }
        )
    return out
