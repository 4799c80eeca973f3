import numpy as np

from kbert.layers import BertEmbeddings


def make(**kw):
    args = dict(vocab_size=50, hidden_size=8, max_position_embeddings=16, type_vocab_size=2, dropout=0.0)
    args.update(kw)
    return BertEmbeddings(**args)


def test_shape_and_weight_layout():
    layer = make()
    out = layer(np.ones((2, 5), "int32"), np.zeros((2, 5), "int32"))
    assert out.shape == (2, 5, 8)
    shapes = sorted(tuple(w.shape) for w in layer.weights)
    assert shapes == sorted([(50, 8), (2, 8), (16, 8), (8,), (8,)])


def test_is_sum_of_three_tables_then_layer_norm():
    layer = make()
    ids = np.array([[3, 7, 9]], "int32")
    segs = np.array([[0, 1, 1]], "int32")
    out = np.asarray(layer(ids, segs))
    tok = np.asarray(layer.token_embedding.embeddings)
    seg = np.asarray(layer.segment_embedding.embeddings)
    pos = np.asarray(layer.position_embeddings)
    summed = tok[ids[0]] + seg[segs[0]] + pos[:3]
    mean = summed.mean(-1, keepdims=True)
    var = summed.var(-1, keepdims=True)
    np.testing.assert_allclose(out[0], (summed - mean) / np.sqrt(var + 1e-12), atol=1e-5)


def test_positions_do_not_depend_on_padding_length():
    layer = make()
    ids = np.array([[4, 5, 6]], "int32")
    short = np.asarray(layer(ids, np.zeros_like(ids)))
    padded_ids = np.pad(ids, ((0, 0), (0, 5)))
    long = np.asarray(layer(padded_ids, np.zeros_like(padded_ids)))
    np.testing.assert_allclose(short[0], long[0, :3], atol=1e-6)


def test_dropout_only_in_training():
    layer = make(dropout=0.5)
    ids = np.ones((1, 6), "int32")
    a = np.asarray(layer(ids, ids * 0, training=False))
    b = np.asarray(layer(ids, ids * 0, training=False))
    np.testing.assert_array_equal(a, b)
    c = np.asarray(layer(ids, ids * 0, training=True))
    assert (c == 0).any() and not np.allclose(a, c)


def test_config_round_trip():
    layer = make(layer_norm_eps=1e-6)
    clone = BertEmbeddings.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
