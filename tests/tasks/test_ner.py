"""NER prediction and serving tag the same words, found by the tokenizer's
public word starts and character offsets."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kbert.config import BertConfig
from kbert.data.words import split_words
from kbert.model_dir import save_model
from kbert.tasks.ner import text_words
from kbert.tasks.serving import ner as ner_serving
from kbert.training.finetune import predict

TEXTS = [
    "Zoë's café,東京で🙂 nice\u2014really?! x\u200by \u200b nai\u0308ve\u00a0ok. \u2028end",
    "Angela Merkel met Emmanuel Macron in Berlin.",
    "unaffable tokenization of wordpieces",
    "",
]
LABELS = ["O", "B-PER", "I-PER", "B-LOC"]


def test_word_starts_are_the_pieces_without_the_continuation_mark(tok):
    ids = tok.tokenize(TEXTS)
    starts = tok.word_starts(ids)
    assert starts.to_list() == [[not t.startswith("##") for t in tok.convert_ids_to_tokens(row)]
                                for row in ids.to_list()]
    dense = tok.word_starts(tf.constant([[tok.cls_id, 100, 2000]]))
    assert dense.dtype == tf.bool and dense.shape == (1, 3)


def test_text_words_are_the_basic_tokenizer_words(tok):
    # The same words as split_words (BERT's whitespace/punctuation split), found
    # by the tokenizer itself.
    assert text_words(tok, TEXTS) == [split_words(t) for t in TEXTS]
    assert text_words(tok, []) == []


@pytest.fixture(scope="module")
def tagger_dir(tmp_path_factory, tok):
    from kbert.models import BertEncoder, BertTagger

    keras.utils.set_random_seed(1)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_layers=1, num_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    model = BertTagger(BertEncoder(config), len(LABELS))
    path = tmp_path_factory.mktemp("ner") / "model"
    save_model(model, path, vocab=tok.vocab, labels=LABELS, seq_len=48)
    return path, model


def test_serving_tags_the_words_predict_tags(tagger_dir, tok):
    path, model = tagger_dir
    serve, _ = ner_serving.serving_default(model, tok, 48, labels=LABELS)
    out = {k: v.numpy() for k, v in tf.function(serve)(tf.constant(TEXTS)).items()}
    for i, (text, result) in enumerate(zip(TEXTS, predict(path, TEXTS))):
        at = np.flatnonzero(out["word_start"][i])
        words = [(w, s, e) for w, s, e in text_words(tok, [text])[0]]
        # One flagged piece per word, at the word's first character; its tag is predict's.
        assert [int(out["token_start"][i][j]) for j in at] == [s for _, s, _ in words]
        assert [w for w, _, _ in words] == result["words"]
        assert [out["tags"][i][j].decode() for j in at] == result["tags"]
        # Offsets are characters of `text` for every real token, -1 elsewhere.
        ids, begin, end = tok.tokenize_with_char_offsets(text)
        n = len(ids.numpy())
        assert out["token_start"][i][1:n + 1].tolist() == begin.numpy().tolist()
        assert out["token_end"][i][1:n + 1].tolist() == end.numpy().tolist()
        assert out["token_start"][i][0] == -1 and (out["token_start"][i][n + 1:] == -1).all()
