import keras
import numpy as np

from kbert.layers import ClassificationHead, MaskedLMHead, SpanHead


def test_mlm_head_only_computes_masked_positions_with_tied_decoder():
    table = keras.layers.Embedding(30, 8)
    table.build((None,))
    head = MaskedLMHead(table)
    seq = np.random.default_rng(0).normal(size=(2, 6, 8)).astype("float32")
    positions = np.array([[1, 4], [0, 5]], "int32")
    logits = np.asarray(head(seq, positions))
    assert logits.shape == (2, 2, 30)
    # Same as transforming every position and picking the masked ones.
    all_positions = np.tile(np.arange(6, dtype="int32"), (2, 1))
    full = np.asarray(head(seq, all_positions))
    np.testing.assert_allclose(logits, np.take_along_axis(full, positions[..., None], axis=1), atol=1e-5)
    # The decoder is the embedding table: changing it changes the logits.
    table.embeddings.assign(table.embeddings * 2.0)
    assert not np.allclose(logits, np.asarray(head(seq, positions)))
    # Own variables: transform dense, LayerNorm, output bias (not the table).
    assert sorted(w.path.split("/")[-1] for w in head.weights) == sorted(
        ["kernel", "bias", "gamma", "beta", "output_bias"]
    )


def test_classification_head_on_pooled_and_sequence():
    head = ClassificationHead(3, dropout=0.0)
    assert head(np.zeros((4, 8), "float32")).shape == (4, 3)
    tagger = ClassificationHead(5, dropout=0.0)
    out = tagger(np.zeros((4, 7, 8), "float32"))
    assert out.shape == (4, 7, 5) and out.dtype == "float32"


def test_span_head_splits_start_end():
    head = SpanHead()
    seq = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    start, end = head(seq)
    assert start.shape == end.shape == (2, 5)
    kernel = np.asarray(head.dense.kernel)
    bias = np.asarray(head.dense.bias)
    np.testing.assert_allclose(np.asarray(start), seq @ kernel[:, 0] + bias[0], atol=1e-5)
    np.testing.assert_allclose(np.asarray(end), seq @ kernel[:, 1] + bias[1], atol=1e-5)


def test_heads_config_round_trip():
    for layer in (ClassificationHead(4, dropout=0.2), SpanHead(initializer_range=0.1), MaskedLMHead(hidden_act="relu")):
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
