import keras
import numpy as np
import pytest
import tensorflow as tf

from kbert.checkpoints import export_hf
from kbert.config import BertConfig
from kbert.errors import KbertError
from kbert.model_dir import save_model
from kbert.models import BertClassifier, BertEncoder
from kbert.preprocessing import BertPreprocessor
from kbert.tokenization import SPECIAL_TOKENS, BertTokenizer

WORDS = "the cat sat it was tired a great film dull cafe".split()
VOCAB = list(SPECIAL_TOKENS) + WORDS


@pytest.fixture
def preprocessor():
    return BertPreprocessor(VOCAB, seq_len=12, labels=["neg", "pos"])


def ids(features):
    return np.asarray(features["token_ids"]).tolist()


def test_text_gives_the_tokenizers_features(preprocessor):
    tokenizer = BertTokenizer(VOCAB)
    out = preprocessor(["a great film", "dull"])
    expected = tokenizer(["a great film", "dull"], seq_len=12)
    assert sorted(out) == ["padding_mask", "segment_ids", "token_ids"]
    for name in out:
        np.testing.assert_array_equal(out[name], expected[name])
    assert ids(preprocessor("dull")) == tokenizer.encode("dull") + [0] * 9


def test_pairs_x_y_and_sample_weight(preprocessor):
    tokenizer = BertTokenizer(VOCAB)
    x, y = preprocessor((["the cat sat"], ["it was tired"]), ["pos"])
    assert ids(x)[0][:9] == tokenizer.encode("the cat sat", "it was tired")
    assert np.asarray(x["segment_ids"])[0].tolist() == [0] * 5 + [1] * 4 + [0] * 3
    assert np.asarray(y).tolist() == [1]
    x, y, w = preprocessor(["dull", "a great film"], ["neg", "pos"], [0.5, 2.0])
    assert np.asarray(y).tolist() == [0, 1] and list(w) == [0.5, 2.0]
    # Integer labels pass through untouched, with or without a label list.
    _, y = BertPreprocessor(VOCAB, seq_len=8)("dull", 3)
    assert int(y) == 3


@pytest.mark.parametrize("batch", [None, 2])
def test_dataset_map_then_fit_on_raw_text_label_pairs(preprocessor, batch):
    texts = ["a great film", "dull", "the cat sat", "tired"]
    ds = tf.data.Dataset.from_tensor_slices((texts, ["pos", "neg", "pos", "neg"]))
    ds = ds.map(preprocessor).batch(2) if batch is None else ds.batch(batch).map(preprocessor)
    x, y = next(iter(ds))
    assert x["token_ids"].shape == (2, 12) and y.dtype == tf.int32
    assert y.numpy().tolist() == [1, 0]

    keras.utils.set_random_seed(0)
    config = BertConfig.preset("tiny", vocab_size=len(VOCAB), num_layers=1)
    model = BertClassifier(BertEncoder(config), 2)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_pairs_dataset(preprocessor):
    ds = tf.data.Dataset.from_tensor_slices(((["the cat sat"], ["it was tired"]), ["neg"])).map(preprocessor)
    x, y = next(iter(ds))
    assert np.asarray(x["segment_ids"]).tolist()[5:9] == [1, 1, 1, 1] and int(y) == 0


def test_unknown_string_label_is_a_clear_error_in_the_pipeline(preprocessor):
    ds = tf.data.Dataset.from_tensor_slices((["dull", "tired"], ["neg", "meh"])).batch(2).map(preprocessor)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"unknown label:\] \[meh\]"):
        next(iter(ds))
    with pytest.raises(tf.errors.InvalidArgumentError, match="unknown label"):
        preprocessor("dull", "meh")


def test_string_labels_without_a_label_list_are_refused():
    with pytest.raises(KbertError, match="labels="):
        BertPreprocessor(VOCAB, seq_len=8)("dull", "neg")
    with pytest.raises(KbertError, match="distinct"):
        BertPreprocessor(VOCAB, labels=["a", "a"])


def test_get_config_round_trip(preprocessor):
    config = preprocessor.get_config()
    assert config["vocab"] == VOCAB and config["seq_len"] == 12 and config["labels"] == ["neg", "pos"]
    assert config["lowercase"] is True
    copy = BertPreprocessor.from_config(config)
    np.testing.assert_array_equal(copy("Café dull")["token_ids"], preprocessor("Café dull")["token_ids"])
    cased = BertPreprocessor(VOCAB, seq_len=8, lowercase=False)
    assert cased.get_config()["lowercase"] is False and cased.get_config()["labels"] is None
    # Uncased, "Café" is the vocab's "cafe"; cased it is [UNK].
    assert ids(cased("Café"))[:3] == [2, 1, 3]
    assert ids(preprocessor("Café"))[:3] == [2, VOCAB.index("cafe"), 3]


def test_from_pretrained_reads_vocab_casing_and_seq_len(tmp_path):
    config = BertConfig.preset("tiny", vocab_size=len(VOCAB), num_layers=1, max_position_embeddings=64)
    encoder = BertEncoder(config)
    save_model(encoder, tmp_path / "kbert", vocab=VOCAB, lowercase=False, seq_len=20)
    p = BertPreprocessor.from_pretrained(tmp_path / "kbert", labels=["x", "y"])
    assert (p.seq_len, p.lowercase, p.tokenizer.vocab, p.labels) == (20, False, VOCAB, ["x", "y"])
    assert BertPreprocessor.from_pretrained(tmp_path / "kbert", seq_len=10).seq_len == 10

    # A Hugging Face directory: casing from tokenizer_config.json, seq_len 128
    # capped by max_position_embeddings.
    export_hf(encoder, tmp_path / "hf", vocab=VOCAB, lowercase=True)
    p = BertPreprocessor.from_pretrained(tmp_path / "hf")
    assert (p.seq_len, p.lowercase, p.tokenizer.vocab) == (64, True, VOCAB)


def test_a_directory_is_not_a_vocab(tmp_path):
    with pytest.raises(KbertError, match="from_pretrained"):
        BertPreprocessor(tmp_path)


def test_exported_from_kbert():
    import kbert

    assert kbert.BertPreprocessor is BertPreprocessor
