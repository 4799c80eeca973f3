"""Raw text to words with offsets (`split_words`) and entity spans (`entities`)."""

import pytest

from kbert.data.words import entities, split_words
from kbert.errors import KbertError


TEXT = "Zoë's café,東京で🙂 nice\u2014really?! x\u200by \u200b nai\u0308ve\u00a0ok. \u2028end"


def test_split_words(tok):
    words = split_words(TEXT)
    assert [w for w, _, _ in words] == [
        "Zoë", "'", "s", "café", ",", "東", "京", "で🙂", "nice", "\u2014", "really", "?", "!",
        "x\u200by", "nai\u0308ve", "ok", ".", "end",
    ]
    assert all(TEXT[start:end] == w for w, start, end in words)
    assert words[:5] == [("Zoë", 0, 3), ("'", 3, 4), ("s", 4, 5), ("café", 6, 10), (",", 10, 11)]
    # Tokenizing word by word gives the pieces of the whole text.
    pieces = tok.tokenize([w for w, _, _ in words])
    assert sum(pieces.to_list(), []) == tok.tokenize(TEXT).numpy().tolist()
    assert split_words("") == [] and split_words(" \u200b\t") == []
    assert split_words("\u200bab\u200b") == [("ab", 1, 3)]


def test_entities():
    text = "Mr. John Smith visited New York City and 東京."
    words = split_words(text)
    assert [w for w, _, _ in words] == [
        "Mr", ".", "John", "Smith", "visited", "New", "York", "City", "and", "東", "京", ".",
    ]
    tags = ["O", "O", "I-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-LOC", "O", "B-LOC", "E-LOC", "O"]
    assert entities(words, tags, text) == [
        {"type": "PER", "text": "John Smith", "start": 4, "end": 14, "words": [2, 4]},
        {"type": "LOC", "text": "New York City", "start": 23, "end": 36, "words": [5, 8]},
        {"type": "LOC", "text": "東京", "start": 41, "end": 43, "words": [9, 11]},
    ]
    assert entities([], [], "") == []
    with pytest.raises(KbertError, match="got 1 tags for 12 words"):
        entities(words, ["O"], text)
