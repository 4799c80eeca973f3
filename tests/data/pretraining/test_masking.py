import numpy as np
import pytest
import tensorflow as tf

from kbert.data.pretraining import MaskingSpec, PretrainingConfig, mask_tokens, mask_tokens_tf
from kbert.data.pretraining.masking import greedy_select
from kbert.errors import KbertError

from .helpers import check_per_row, check_rates, masking_stats, padded


@pytest.mark.parametrize("whole_word", [False, True])
def test_numpy_masking_statistics(tok, special, sample_instances, whole_word):
    config = PretrainingConfig(whole_word_mask=whole_word)
    rng = np.random.default_rng(5)
    ids, starts = padded(sample_instances, config.seq_len, tok.pad_id)
    outs = [
        mask_tokens(row, config, rng, tok.vocab_size, special, tok.mask_id, s)
        for row, s in zip(ids, starts)
    ]
    out = [np.stack(column) for column in zip(*outs)]
    assert out[0].dtype == np.int32 and out[1].shape == (len(ids), 20)
    assert out[3].dtype == np.float32
    stats = masking_stats(tok, special, ids, *out, starts=starts if whole_word else None)
    check_rates(stats)
    check_per_row(stats, ids, special, whole_word)


@pytest.mark.parametrize("whole_word", [False, True])
def test_graph_masking_statistics(tok, special, sample_instances, whole_word):
    config = PretrainingConfig(whole_word_mask=whole_word)
    ids, starts = padded(sample_instances, config.seq_len, tok.pad_id)
    run = tf.function(
        lambda i, s, seed: mask_tokens_tf(
            i, config, seed, tok.vocab_size, special, tok.mask_id, s
        )
    )
    out = [np.asarray(t) for t in run(ids, starts, tf.constant([7, 8], tf.int64))]
    stats = masking_stats(tok, special, ids, *out, starts=starts if whole_word else None)
    check_rates(stats)
    check_per_row(stats, ids, special, whole_word)
    again = run(ids, starts, tf.constant([7, 8], tf.int64))
    np.testing.assert_array_equal(again.token_ids, out[0])  # stateless: same seed, same masks


def test_prediction_cap_binds(tok, special, sample_instances):
    config = PretrainingConfig(max_predictions_per_seq=5, whole_word_mask=True)
    rng = np.random.default_rng(0)
    counts = [
        int(mask_tokens(i["token_ids"], config, rng, tok.vocab_size, special, tok.mask_id,
                        i["word_starts"]).mask_weights.sum())
        for i in sample_instances[:300]
    ]
    assert max(counts) == 5 and np.mean(np.array(counts) == 5) > 0.8


def test_graph_greedy_selection_equals_googles_loop():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 5, (200, 30)).astype(np.int32)
    valid = rng.random((200, 30)) < 0.9
    num = rng.integers(0, 25, 200).astype(np.int32)
    got = greedy_select(tf.constant(lengths), tf.constant(valid), tf.constant(num)).numpy()
    for row in range(200):
        want, count = np.zeros(30, bool), 0
        for k in range(30):
            if not valid[row, k] or count >= num[row]:
                continue
            if count + lengths[row, k] > num[row]:
                continue
            want[k], count = True, count + lengths[row, k]
        np.testing.assert_array_equal(got[row], want)


# --- one spec, two implementations -------------------------------------------------


@pytest.mark.parametrize("prob, cap", [(0.15, 20), (0.5, 7), (0.01, 3), (1.0, 125)])
def test_prediction_counts_agree_between_numpy_and_graph(prob, cap):
    config = PretrainingConfig(masked_lm_prob=prob, max_predictions_per_seq=cap)
    spec = MaskingSpec(config, 10, [0], 1)
    n = np.arange(0, 2000)
    np.testing.assert_array_equal(
        spec.num_to_predict_tf(tf.constant(n, tf.int32)).numpy(), spec.num_to_predict(n)
    )
    # Google's rule: round (half to even), at least 1, at most the cap and n.
    assert spec.num_to_predict(0) == 0 and spec.num_to_predict(1) == 1


@pytest.mark.parametrize("whole_word", [False, True])
def test_numpy_and_graph_select_the_same_number_per_row(tok, special, sample_instances, whole_word):
    config = PretrainingConfig(whole_word_mask=whole_word)
    spec = MaskingSpec.from_tokenizer(tok, config)
    ids, starts = padded(sample_instances[:500], config.seq_len, tok.pad_id)
    rng = np.random.default_rng(0)
    numpy_rows = np.array([spec.mask(r, rng, s).mask_weights.sum() for r, s in zip(ids, starts)])
    graph_rows = spec.mask_tf(ids, tf.constant([1, 2], tf.int64), starts).mask_weights.numpy().sum(1)
    if whole_word:  # both skip words that no longer fit, in different random orders
        want = spec.num_to_predict((~np.isin(ids, special)).sum(axis=1))
        assert np.all(numpy_rows <= want) and np.all(graph_rows <= want)
        assert np.mean(numpy_rows == want) > 0.95 and np.mean(graph_rows == want) > 0.95
    else:
        np.testing.assert_array_equal(numpy_rows, graph_rows)


@pytest.mark.parametrize(
    "mask_rate, random_rate, want",
    [(1.0, 0.0, "mask"), (0.0, 1.0, "random"), (0.0, 0.0, "kept"), (0.5, 0.25, None)],
)
def test_replacement_rates_come_from_the_spec_in_both(
    tok, special, sample_instances, mask_rate, random_rate, want
):
    config = PretrainingConfig()
    spec = MaskingSpec.from_tokenizer(tok, config, mask_rate=mask_rate, random_rate=random_rate)
    ids, starts = padded(sample_instances, config.seq_len, tok.pad_id)
    rng = np.random.default_rng(3)
    numpy_out = [np.stack(c) for c in zip(*(spec.mask(r, rng) for r in ids))]
    graph_out = [np.asarray(t) for t in spec.mask_tf(ids, tf.constant([3, 4], tf.int64))]
    for out in (numpy_out, graph_out):
        stats = masking_stats(tok, special, ids, *out)
        rates = {"mask": mask_rate, "random": random_rate, "kept": 1 - mask_rate - random_rate}
        for name, rate in rates.items():
            assert abs(stats[name] - rate) < 0.015, (name, stats[name], rate)
        if want == "random":
            # Random replacements are never reserved tokens.
            chosen = out[0][stats["selected_mask"]]
            assert not np.isin(chosen, special).any()


def test_masking_spec_checks_its_inputs():
    config = PretrainingConfig()
    with pytest.raises(KbertError, match="special_ids"):
        MaskingSpec(config, 10, [0, 10], 1)
    with pytest.raises(KbertError, match="every token is special"):
        MaskingSpec(config, 3, [0, 1, 2], 1)
    with pytest.raises(KbertError, match="mask_rate, random_rate"):
        MaskingSpec(config, 10, [0], 1, mask_rate=0.8, random_rate=0.3)
    whole_word = MaskingSpec(PretrainingConfig(whole_word_mask=True), 10, [0], 1)
    with pytest.raises(KbertError, match="whole_word_mask needs word_starts"):
        whole_word.mask(np.array([2, 3, 4]), np.random.default_rng(0))
    with pytest.raises(KbertError, match="whole_word_mask needs word_starts"):
        whole_word.mask_tf(np.array([[2, 3, 4]]), tf.constant([1, 2], tf.int64))
