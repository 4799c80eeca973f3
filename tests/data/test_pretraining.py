import gc
import os
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import data_path
from kbert.config import BertConfig
from kbert.data import pretraining as pt
from kbert.data import (
    PretrainingConfig,
    create_instances,
    dynamic_dataset,
    held_out_split,
    mask_tokens,
    mask_tokens_tf,
    read_data_info,
    read_documents,
    special_token_ids,
    split_sentences,
    tfrecord_dataset,
    truncate_pair,
    write_tfrecords,
)
from kbert.errors import DataError, KbertError
from kbert.models import BertEncoder, BertPretrainer


SPECIAL = {}  # vocab size -> special ids (special_token_ids scans the vocabulary)


@pytest.fixture(scope="module")
def special(tok):
    SPECIAL[tok.vocab_size] = special_token_ids(tok)
    return SPECIAL[tok.vocab_size]


@pytest.fixture(scope="module")
def sample():
    return data_path("corpus", "sample.txt")


@pytest.fixture(scope="module")
def sample_instances(tok, sample):
    """Instances of sample.txt (~2,500, ~270k tokens) with the default config."""
    rng = np.random.default_rng(0)
    return list(create_instances(read_documents(sample), tok, PretrainingConfig(), rng))


@pytest.fixture(scope="module")
def sample_docs(tok, sample):
    """Each document of sample.txt as one flat array of token ids."""
    docs = list(pt._tokenize_documents(read_documents(sample), tok))
    return [d.ids for d in docs]


def write(path, text, mode="w"):
    path = Path(path)
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def contains(haystack, needle):
    """Whether `needle` occurs contiguously in `haystack` (1-D int arrays)."""
    if len(needle) == 0:
        return True
    windows = np.lib.stride_tricks.sliding_window_view(haystack, len(needle))
    return bool((windows == needle).all(axis=1).any())


def vocab_words(tok, count):
    """`count` distinct single-token words: each marks one synthetic document."""
    words = [t for t in tok.vocab[2000:4000] if t.isalpha() and len(t) >= 3]
    return words[:count]


def word_corpus(tmp_path, words, name="words.txt"):
    # Document k is three sentences made only of word k (and a period).
    docs = ["\n".join(f"{w} {w} {w} {w}." for _ in range(3)) for w in words]
    return write(tmp_path / name, "\n\n".join(docs) + "\n")


def unmask(x, y):
    """The original token ids of a batch: masked ids with the targets put back.

    Unused prediction slots hold id 0, [PAD] in this vocabulary, which is never
    a target."""
    ids = np.array(x["token_ids"])
    positions, targets = np.asarray(x["mask_positions"]), np.asarray(y["mlm"])
    rows, slots = np.nonzero(targets)
    ids[rows, positions[rows, slots]] = targets[rows, slots]
    return ids


# --- config -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("seq_len", 4),
        ("seq_len", 128.0),
        ("short_seq_prob", 1.5),
        ("masked_lm_prob", 0.0),
        ("max_predictions_per_seq", 0),
        ("max_predictions_per_seq", 126),
        ("whole_word_mask", "yes"),
        ("random_next_prob", -0.1),
        ("dupe_factor", 0),
        ("negatives_buffer", 1),
        ("seed", -1),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(KbertError, match=f"PretrainingConfig.{field}"):
        PretrainingConfig(**{field: value})


def test_config_dict_round_trip_and_unknown_keys():
    config = PretrainingConfig(seq_len=64, whole_word_mask=True)
    assert PretrainingConfig.from_dict(config.to_dict()) == config
    with pytest.raises(KbertError, match="unknown field"):
        PretrainingConfig.from_dict({"seq_length": 64})


# --- reading documents -------------------------------------------------------------


def test_split_sentences_rules():
    assert split_sentences("Mr. Smith arrived. He sat down! Then? 3 cats left.") == [
        "Mr. Smith arrived.", "He sat down!", "Then?", "3 cats left.",
    ]
    # Abbreviations, initials, acronyms and lowercase continuations do not split.
    assert split_sentences("J. R. R. Tolkien wrote it, e.g. The Hobbit. It sold.") == [
        "J. R. R. Tolkien wrote it, e.g. The Hobbit.", "It sold.",
    ]
    assert split_sentences("The U.S. Army left etc. and more. Fine.") == [
        "The U.S. Army left etc. and more.", "Fine.",
    ]
    assert split_sentences('He said "Go." "Now?" she asked.') == [
        'He said "Go."', '"Now?" she asked.',
    ]
    assert split_sentences("  ") == []


def test_read_documents_bert_format(tmp_path):
    a = write(tmp_path / "a.txt", "s1\ns2\n\n\n  \ns3\n")
    b = write(tmp_path / "b.txt", "t1\r\n\r\nt2\r\nt3")
    # A document ends at a blank line and at the end of every file; files are
    # read in turn, one document from each.
    assert list(read_documents([a, b])) == [["s1", "s2"], ["t1"], ["s3"], ["t2", "t3"]]
    # Globs expand sorted.
    assert list(read_documents(str(tmp_path / "*.txt"))) == list(read_documents([a, b]))


def test_files_are_interleaved_a_bounded_number_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(pt, "INTERLEAVE_FILES", 2)
    paths = [
        write(tmp_path / f"{name}.txt", "\n\n".join(f"{name}{i}" for i in range(n)) + "\n")
        for name, n in (("a", 3), ("b", 1), ("c", 2))
    ]
    order = [d[0] for d in read_documents(paths)]
    # c waits for a free slot; a short file frees its slot when it ends.
    assert order == ["a0", "b0", "a1", "c0", "a2", "c1"]


def test_read_documents_paragraph_mode(tmp_path):
    with_blanks = write(tmp_path / "p.txt", "One. Two!\nThree.\n\nFour? Five.\n")
    assert list(read_documents(with_blanks, split_sentences=True)) == [
        ["One.", "Two!", "Three."], ["Four?", "Five."],
    ]
    # No blank line at all: one document per line.
    per_line = write(tmp_path / "q.txt", "One. Two.\nThree. Four.\n")
    assert list(read_documents(per_line, split_sentences=True)) == [
        ["One.", "Two."], ["Three.", "Four."],
    ]


def test_long_documents_are_cut(tmp_path, monkeypatch):
    monkeypatch.setattr(pt, "MAX_DOCUMENT_SENTENCES", 4)
    path = write(tmp_path / "long.txt", "\n".join(f"s{i}" for i in range(10)) + "\n")
    assert [len(d) for d in read_documents(path)] == [4, 4, 2]


def test_read_documents_errors_name_file_and_line(tmp_path):
    with pytest.raises(DataError, match="nothing-here-\\*.txt: no file matches"):
        read_documents(str(tmp_path / "nothing-here-*.txt"))
    with pytest.raises(DataError, match="missing.txt: file not found"):
        read_documents(str(tmp_path / "missing.txt"))
    binary = write(tmp_path / "bin.txt", b"abc\x00def", "wb")
    with pytest.raises(DataError, match="bin.txt: looks like a binary file"):
        read_documents(binary)
    bad = write(tmp_path / "bad.txt", b"ok\nfine\n\xff\xfe broken\n", "wb")
    with pytest.raises(DataError, match="bad.txt:3: not valid UTF-8"):
        list(read_documents(bad))


def test_holdout_partitions_documents_stably(tmp_path):
    docs = [[f"document {i} sentence {j}." for j in range(2)] for i in range(3000)]
    path = write(tmp_path / "many.txt", "\n\n".join("\n".join(d) for d in docs))
    train = list(read_documents(path, holdout=0.1))
    heldout = list(read_documents(path, holdout=0.1, split="heldout"))
    assert len(train) + len(heldout) == 3000
    assert sorted(map(tuple, train + heldout)) == sorted(map(tuple, docs))
    assert 0.085 < len(heldout) / 3000 < 0.115
    # The split depends on the text only, not on position or file order.
    assert all(held_out_split(d, 0.1) == "heldout" for d in heldout)
    assert all(held_out_split(d, 0.1) == "train" for d in train)
    with pytest.raises(KbertError, match="holdout"):
        read_documents(path, holdout=1.0)
    with pytest.raises(KbertError, match="split"):
        read_documents(path, holdout=0.1, split="test")


# --- instances ------------------------------------------------------------------------


def google_truncate(a, b, max_tokens, rng):
    """Google's truncate_seq_pair, verbatim (lists)."""
    a, b = list(a), list(b)
    while len(a) + len(b) > max_tokens:
        trunc = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del trunc[0]
        else:
            trunc.pop()
    return a, b


def test_truncate_pair_matches_google():
    rng = np.random.default_rng(0)
    for _ in range(500):
        la, lb, limit = rng.integers(1, 60), rng.integers(1, 60), rng.integers(2, 80)
        a, b = np.arange(la), 1000 + np.arange(lb)
        ta, tb = truncate_pair(a, b, limit, rng)
        ga, gb = google_truncate(a, b, limit, rng)
        assert (len(ta), len(tb)) == (len(ga), len(gb))
        assert contains(a, ta) and contains(b, tb)  # contiguous: cut at the ends only
    # Front and back cuts are equally likely.
    fronts = [truncate_pair(np.arange(50), np.arange(10), 40, rng)[0][0] for _ in range(2000)]
    assert 9.7 < np.mean(fronts) < 10.3  # A loses 20 tokens; Binomial(20, 0.5) from the front


def test_instance_layout(tok, sample_instances):
    config = PretrainingConfig()
    starts = np.array([not t.startswith("##") for t in tok.vocab])
    assert len(sample_instances) > 2000
    for inst in sample_instances:
        ids, seg = inst["token_ids"], inst["segment_ids"]
        assert ids.dtype == np.int32 and len(ids) <= config.seq_len
        sep = np.flatnonzero(ids == tok.sep_id)
        assert ids[0] == tok.cls_id and len(sep) == 2 and sep[1] == len(ids) - 1
        assert 1 < sep[0] < sep[1] - 1  # A and B are non-empty
        assert tok.cls_id not in ids[1:] and tok.pad_id not in ids
        np.testing.assert_array_equal(seg, (np.arange(len(ids)) > sep[0]).astype(np.int32))
        np.testing.assert_array_equal(inst["word_starts"], starts[ids])


def test_segments_come_from_their_documents(sample_instances, sample_docs):
    full_untruncated = 0
    for inst in sample_instances:
        ids = inst["token_ids"]
        sep = np.flatnonzero(ids == ids[-1])[0]
        a, b = ids[1:sep], ids[sep + 1:-1]
        assert contains(sample_docs[inst["a_doc"]], a)
        assert contains(sample_docs[inst["b_doc"]], b)
        if inst["nsp_label"] == 1:
            assert inst["b_doc"] != inst["a_doc"]
        else:
            assert inst["b_doc"] == inst["a_doc"]
            if len(ids) < 128:  # not truncated: B is A's true continuation
                assert contains(sample_docs[inst["a_doc"]], np.concatenate([a, b]))
                full_untruncated += 1
    assert full_untruncated > 100


def test_negatives_come_from_the_bounded_buffer(tok, sample):
    config = PretrainingConfig(negatives_buffer=8)
    rng = np.random.default_rng(1)
    instances = list(create_instances(read_documents(sample), tok, config, rng))
    offsets = [i["b_doc"] - i["a_doc"] for i in instances if i["nsp_label"] == 1]
    assert 0 not in offsets
    assert max(map(abs, offsets)) < 8
    assert min(offsets) < 0 < max(offsets)  # the window reaches both ways


def test_nsp_labels_and_short_sequences(tok, sample, sample_instances):
    def instances(**overrides):
        config = PretrainingConfig(**overrides)
        return list(create_instances(read_documents(sample), tok, config, np.random.default_rng(2)))

    # One-sentence chunks always get a random B (Google's rule), so label 1 is
    # a little above random_next_prob; `forced` measures how much.
    forced = np.mean([i["nsp_label"] for i in instances(random_next_prob=0.0)])
    assert 0 < forced < 0.2
    observed = np.mean([i["nsp_label"] for i in sample_instances])
    assert abs(observed - (forced + (1 - forced) * 0.5)) < 0.04

    long_ = [len(i["token_ids"]) for i in instances(short_seq_prob=0.0)]
    short = [len(i["token_ids"]) for i in instances(short_seq_prob=1.0)]
    default = [len(i["token_ids"]) for i in sample_instances]
    assert np.mean(short) < 0.6 * np.mean(long_)
    assert np.mean(short) < np.mean(default) < np.mean(long_)
    assert np.mean(np.array(long_) == 128) > 0.6


def test_one_document_or_no_text_is_an_error(tmp_path, tok):
    one = write(tmp_path / "one.txt", "A sentence.\nAnother one.\n")
    with pytest.raises(DataError, match="only one document"):
        list(create_instances(read_documents(one), tok))
    with pytest.raises(DataError, match="one.txt: the input has only one document"):
        write_tfrecords(one, tok, tmp_path / "out", progress=False)
    blank = write(tmp_path / "blank.txt", "\n  \n\n")
    with pytest.raises(DataError, match="blank.txt: no text"):
        write_tfrecords(blank, tok, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


# --- masking statistics -------------------------------------------------------------------


def masking_stats(tok, ids, masked, positions, mask_ids, weights, starts=None):
    """Rates over real, non-special tokens; checks invariants along the way."""
    special = np.zeros(tok.vocab_size, bool)
    special[SPECIAL[tok.vocab_size]] = True
    real = weights > 0
    # Real predictions come first, in increasing position order; padding is 0.
    assert np.all(real[:, :-1] | ~real[:, 1:])
    assert np.all(np.diff(positions, axis=1)[real[:, 1:]] > 0)
    assert not positions[~real].any() and not mask_ids[~real].any()
    np.testing.assert_array_equal(mask_ids[real], np.take_along_axis(ids, positions, 1)[real])
    selected = np.zeros(ids.shape, bool)
    rows = np.broadcast_to(np.arange(len(ids))[:, None], positions.shape)
    selected[rows[real], positions[real]] = True
    candidates = ~special[ids]
    assert not selected[~candidates].any()  # [CLS], [SEP], [PAD] never selected
    np.testing.assert_array_equal(masked[~selected], ids[~selected])
    if starts is not None:
        # A word (a start token and the "##" pieces after it) is all in or all out.
        previous = np.pad(candidates[:, :-1], [(0, 0), (1, 0)])
        word = np.cumsum(candidates & (starts | ~previous), axis=1)
        key = (word + np.arange(len(ids))[:, None] * ids.shape[1])[candidates]
        size = np.bincount(key)
        picked = np.bincount(key, weights=selected[candidates])
        assert np.all((picked == 0) | (picked == size))
        assert (size > 1).sum() > 100  # there were multi-piece words to split
    chosen, originals = masked[selected], ids[selected]
    return {
        "tokens": int(candidates.sum()),
        "selected": selected.sum() / candidates.sum(),
        "mask": np.mean(chosen == tok.mask_id),
        "random": np.mean((chosen != tok.mask_id) & (chosen != originals)),
        "kept": np.mean(chosen == originals),
        "per_row": selected.sum(axis=1),
    }


def check_rates(stats):
    assert stats["tokens"] >= 100_000
    assert abs(stats["selected"] - 0.15) < 0.005
    assert abs(stats["mask"] - 0.8) < 0.01
    assert abs(stats["random"] - 0.1) < 0.01
    assert abs(stats["kept"] - 0.1) < 0.01


def padded(instances, seq_len, pad_id):
    ids = np.full((len(instances), seq_len), pad_id, np.int32)
    starts = np.zeros((len(instances), seq_len), bool)
    for row, inst in enumerate(instances):
        ids[row, :len(inst["token_ids"])] = inst["token_ids"]
        starts[row, :len(inst["token_ids"])] = inst["word_starts"]
    return ids, starts


def check_per_row(stats, ids, special, whole_word):
    # round(15%) of the selectable tokens, at least 1, at most 20; whole words
    # that no longer fit are skipped, so whole-word rows may fall short.
    n = (~np.isin(ids, special)).sum(axis=1)
    want = np.minimum(np.maximum(np.round(n * 0.15), 1), 20)
    if whole_word:
        assert np.all(stats["per_row"] <= want) and np.mean(stats["per_row"] == want) > 0.95
    else:
        np.testing.assert_array_equal(stats["per_row"], want)


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
    stats = masking_stats(tok, ids, *out, starts=starts if whole_word else None)
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
    stats = masking_stats(tok, ids, *out, starts=starts if whole_word else None)
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
    got = pt._greedy_select(tf.constant(lengths), tf.constant(valid), tf.constant(num)).numpy()
    for row in range(200):
        want, count = np.zeros(30, bool), 0
        for k in range(30):
            if not valid[row, k] or count >= num[row]:
                continue
            if count + lengths[row, k] > num[row]:
                continue
            want[k], count = True, count + lengths[row, k]
        np.testing.assert_array_equal(got[row], want)


# --- TFRecords --------------------------------------------------------------------------


SMALL = PretrainingConfig(seq_len=64, max_predictions_per_seq=10, negatives_buffer=50, seed=3)


@pytest.fixture(scope="module")
def written(tok, sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("tfrecords") / "data"
    info = write_tfrecords(sample, tok, out, SMALL, num_shards=3, progress=False)
    return out, info


def test_tfrecords_round_trip(tok, special, sample, written):
    out, info = written
    assert sorted(os.listdir(out)) == [
        "pretrain-00000-of-00003.tfrecord",
        "pretrain-00001-of-00003.tfrecord",
        "pretrain-00002-of-00003.tfrecord",
        "pretrain_data.json",
    ]
    assert read_data_info(out)["config"] == SMALL
    assert info["vocab_size"] == tok.vocab_size and len(info["vocab_sha256"]) == 64
    counts = info["counts"]
    assert counts["documents"] == 201 and counts["instances"] > 3000

    # Recompute what was written: same seed, same interleaving of random draws.
    rng = np.random.default_rng(SMALL.seed)
    expected = []
    for inst in create_instances(read_documents(sample), tok, SMALL, rng):
        m = mask_tokens(inst["token_ids"], SMALL, rng, tok.vocab_size, special,
                        tok.mask_id, inst["word_starts"])
        expected.append((inst, m))
    assert len(expected) == counts["instances"]

    batch = 16
    ds = tfrecord_dataset(out, batch, shuffle=False, repeat=False)
    seen = 0
    for b, batch_tensors in enumerate(ds):
        x, y, w = batch_tensors
        assert {k: (v.dtype, tuple(v.shape)) for k, v in x.items()} == {
            "token_ids": (tf.int32, (batch, 64)),
            "segment_ids": (tf.int32, (batch, 64)),
            "padding_mask": (tf.int32, (batch, 64)),
            "mask_positions": (tf.int32, (batch, 10)),
        }
        assert (y["mlm"].dtype, y["nsp"].dtype) == (tf.int32, tf.int32)
        assert tuple(y["mlm"].shape) == (batch, 10) and tuple(y["nsp"].shape) == (batch,)
        assert (w["mlm"].dtype, tuple(w["mlm"].shape)) == (tf.float32, (batch, 10))
        np.testing.assert_array_equal(w["nsp"], np.ones(batch, np.float32))
        x, y, w = keras.tree.map_structure(np.asarray, batch_tensors)
        for row in range(batch):
            inst, m = expected[b * batch + row]
            n = len(inst["token_ids"])
            np.testing.assert_array_equal(x["token_ids"][row, :n], m.token_ids)
            assert np.all(x["token_ids"][row, n:] == tok.pad_id)
            np.testing.assert_array_equal(x["segment_ids"][row, :n], inst["segment_ids"])
            np.testing.assert_array_equal(x["padding_mask"][row], np.arange(64) < n)
            np.testing.assert_array_equal(x["mask_positions"][row], m.mask_positions)
            np.testing.assert_array_equal(y["mlm"][row], m.mask_ids)
            np.testing.assert_array_equal(w["mlm"][row], m.mask_weights)
            assert y["nsp"][row] == inst["nsp_label"]
            seen += 1
    assert seen == counts["instances"] // batch * batch


def test_tfrecords_are_deterministic(tok, sample, tmp_path):
    lines = open(sample, encoding="utf-8").read().split("\n")[:2500]
    path = write(tmp_path / "part.txt", "\n".join(lines))
    runs = {}
    for name, seed in [("first", 3), ("again", 3), ("other", 4)]:
        config = PretrainingConfig(**{**SMALL.to_dict(), "seed": seed})
        runs[name] = write_tfrecords(path, tok, tmp_path / name, config, num_shards=3,
                                     progress=False)
    assert runs["first"]["counts"] == runs["again"]["counts"]
    # Same bytes across processes too: records are in canonical (sorted-map)
    # protobuf form, not in the process-dependent default order.
    shard = str(tmp_path / "first" / "pretrain-00000-of-00003.tfrecord")
    for record in tf.data.TFRecordDataset(shard, compression_type="GZIP").take(50):
        record = record.numpy()
        canonical = tf.train.Example.FromString(record).SerializeToString(deterministic=True)
        assert record == canonical
    for name in os.listdir(tmp_path / "first"):
        data = (tmp_path / "first" / name).read_bytes()
        assert (tmp_path / "again" / name).read_bytes() == data, name
        if name.endswith(".tfrecord"):
            assert (tmp_path / "other" / name).read_bytes() != data, name


def test_dupe_factor_rereads_with_new_pairs_and_masks(tok, tmp_path):
    path = word_corpus(tmp_path, vocab_words(tok, 20))
    config = PretrainingConfig(seq_len=32, max_predictions_per_seq=5, dupe_factor=3)
    info = write_tfrecords(path, tok, tmp_path / "d", config, num_shards=1, progress=False)
    once = write_tfrecords(path, tok, tmp_path / "o", PretrainingConfig(seq_len=32,
                           max_predictions_per_seq=5), num_shards=1, progress=False)
    assert info["counts"]["documents"] == once["counts"]["documents"] == 20
    assert info["counts"]["instances"] > 2.5 * once["counts"]["instances"]
    x = next(iter(tfrecord_dataset(tmp_path / "d", info["counts"]["instances"],
                                   shuffle=False, repeat=False)))[0]
    rows = [tuple(r) for r in np.asarray(x["token_ids"])]
    assert len(set(rows)) > 0.9 * len(rows)  # passes differ


def test_uncompressed_output_reads_the_same(tok, tmp_path):
    path = word_corpus(tmp_path, vocab_words(tok, 12))
    config = PretrainingConfig(seq_len=32, max_predictions_per_seq=5)
    for compression in ("GZIP", None):
        info = write_tfrecords(path, tok, tmp_path / str(compression), config, num_shards=2,
                               progress=False, compression=compression)
        assert info["compression"] == compression
    gz, raw = [
        batches(tfrecord_dataset(tmp_path / name, 4, shuffle=False, repeat=False), 5)
        for name in ("GZIP", "None")
    ]
    keras.tree.map_structure(np.testing.assert_array_equal, gz, raw)
    with pytest.raises(KbertError, match="compression"):
        write_tfrecords(path, tok, tmp_path / "x", config, compression="zlib")


def test_write_is_atomic(tok, tmp_path):
    good = write(tmp_path / "a.txt", "One sentence.\nTwo.\n\nThree.\nFour.\n")
    bad = write(tmp_path / "b.txt", b"Fine.\n\nAlso fine.\nStill.\n\xc3\x28 broken\n", "wb")
    out = tmp_path / "out"
    with pytest.raises(DataError, match="b.txt:5: not valid UTF-8"):
        write_tfrecords([good, bad], tok, out, SMALL, progress=False)
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.txt"]  # no temporary left
    # An existing output survives a failed rewrite.
    write_tfrecords(good, tok, out, SMALL, progress=False)
    before = (out / "pretrain_data.json").read_bytes()
    with pytest.raises(DataError):
        write_tfrecords([good, bad], tok, out, SMALL, progress=False)
    assert (out / "pretrain_data.json").read_bytes() == before


def test_tfrecord_dataset_checks_its_directory(tmp_path, written):
    with pytest.raises(DataError, match="no pretrain_data.json"):
        tfrecord_dataset(tmp_path, 8)
    with pytest.raises(DataError, match="not a directory"):
        tfrecord_dataset(tmp_path / "nope", 8)
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "pretrain_data.json").write_bytes((written[0] / "pretrain_data.json").read_bytes())
    with pytest.raises(DataError, match="shard pretrain-00000-of-00003.tfrecord .* is missing"):
        tfrecord_dataset(copy, 8)


def test_holdout_in_both_modes(tok, tmp_path):
    words = vocab_words(tok, 40)
    path = word_corpus(tmp_path, words)
    docs = list(read_documents(path))
    ids = {w: tok.tokenize(w).numpy()[0] for w in words}
    held = {ids[d[0].split()[0]] for d in docs if held_out_split(d, 0.3) == "heldout"}
    assert 3 <= len(held) <= 25
    train = set(ids.values()) - held
    config = PretrainingConfig(seq_len=32, max_predictions_per_seq=5, negatives_buffer=6)

    def seen(ds):
        tokens = set()
        for x, y, _ in ds:
            tokens |= set(unmask(x, y).ravel().tolist())
        return tokens & set(ids.values())

    for split, inside, outside in [("train", train, held), ("heldout", held, train)]:
        out = tmp_path / split
        write_tfrecords(path, tok, out, config, progress=False, holdout=0.3, split=split)
        got = seen(tfrecord_dataset(out, 4, shuffle=False, repeat=False))
        assert got and got <= inside and not got & outside
        got = seen(dynamic_dataset(path, tok, config, 4, repeat=False, holdout=0.3, split=split))
        assert got and got <= inside and not got & outside
    assert read_data_info(tmp_path / "heldout")["split"] == "heldout"


# --- dynamic masking ------------------------------------------------------------------------


def batches(ds, count):
    it = iter(ds)
    out = [keras.tree.map_structure(np.asarray, next(it)) for _ in range(count)]
    del it
    gc.collect()
    return out


def test_dynamic_dataset_masks_in_graph(tok, special, sample):
    config = PretrainingConfig(whole_word_mask=True)
    ds = dynamic_dataset(sample, tok, config, 64, seed=1, repeat=False)
    rows = {k: [] for k in ("ids", "masked", "pos", "mid", "w", "starts", "nsp", "pad")}
    starts_table = np.array([not t.startswith("##") for t in tok.vocab])
    for x, y, w in ds:
        ids = unmask(x, y)
        rows["ids"].append(ids)
        rows["masked"].append(np.asarray(x["token_ids"]))
        rows["pos"].append(np.asarray(x["mask_positions"]))
        rows["mid"].append(np.asarray(y["mlm"]))
        rows["w"].append(np.asarray(w["mlm"]))
        rows["starts"].append(starts_table[ids])
        rows["nsp"].append(np.asarray(y["nsp"]))
        rows["pad"].append(np.asarray(x["padding_mask"]))
    rows = {k: np.concatenate(v) for k, v in rows.items()}
    stats = masking_stats(tok, rows["ids"], rows["masked"], rows["pos"], rows["mid"],
                          rows["w"], starts=rows["starts"])
    check_rates(stats)
    np.testing.assert_array_equal(rows["pad"], rows["ids"] != tok.pad_id)
    assert 0.45 < rows["nsp"].mean() < 0.65


def two_sentence_corpus(tmp_path, sample, count=64):
    # Documents of two short sentences, no random B, no short targets: the
    # instances are fixed ("[CLS] s1 [SEP] s2 [SEP]"), only masks can change.
    lines = [l.strip() for l in open(sample, encoding="utf-8") if 20 < len(l.strip()) < 120]
    docs = [f"{lines[2 * i]}\n{lines[2 * i + 1]}" for i in range(count)]
    return write(tmp_path / "pairs.txt", "\n\n".join(docs) + "\n")


def test_dynamic_dataset_is_deterministic_with_fresh_masks_each_epoch(tok, sample, tmp_path):
    path = two_sentence_corpus(tmp_path, sample)
    config = PretrainingConfig(seq_len=96, random_next_prob=0.0, short_seq_prob=0.0)

    def epoch(ds):
        by_instance = {}
        for x, y, _ in ds:
            for row, ids in enumerate(unmask(x, y)):
                by_instance[ids.tobytes()] = np.asarray(x["mask_positions"][row]).tolist()
        return by_instance

    # No shuffling, so each epoch has the same instances in the same batches:
    # new masks can only come from new mask seeds.
    def make(seed, repeat=False):
        return dynamic_dataset(path, tok, config, 8, seed=seed, repeat=repeat, shuffle_buffer=1)

    ds = make(11)
    first, second = epoch(ds), epoch(ds)
    assert len(first) == 64 and first.keys() == second.keys()
    changed = sum(first[k] != second[k] for k in first)
    assert changed > 55  # fresh masks for (nearly) every instance

    assert epoch(make(11)) == first  # reproducible from the seed
    assert epoch(make(12)) != first

    # With repeat, consecutive epochs (8 batches each) differ as well.
    looped = batches(make(11, repeat=True), 16)
    masks = [b[0]["mask_positions"].tolist() for b in looped]
    ids = [unmask(b[0], b[1]).tolist() for b in looped]
    assert ids[:8] == ids[8:] and masks[:8] != masks[8:]


def test_dynamic_dataset_errors(tok, tmp_path):
    with pytest.raises(DataError, match="missing.txt: file not found"):
        dynamic_dataset(str(tmp_path / "missing.txt"), tok, SMALL, 8)
    blank = write(tmp_path / "blank.txt", "\n\n")
    with pytest.raises(tf.errors.OpError, match="blank.txt: no text"):
        batches(dynamic_dataset(blank, tok, SMALL, 8), 1)


# --- Keras ---------------------------------------------------------------------------------------


def test_pretrainer_fits_on_both_datasets(tok, sample, written):
    keras.utils.set_random_seed(0)
    config = BertConfig(
        vocab_size=tok.vocab_size, hidden_size=16, num_layers=2, num_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )
    model = BertPretrainer(BertEncoder(config))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    # XLA would compile for longer than the test runs.
    model.compile(keras.optimizers.Adam(1e-3), loss={"mlm": loss, "nsp": loss}, jit_compile=False)
    # Both datasets have the same element spec, so the second fit reuses the
    # traced train step (tracing is most of this test's time).
    for ds in (tfrecord_dataset(written[0], 8, seed=0), dynamic_dataset(sample, tok, SMALL, 8)):
        history = model.fit(ds, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)
        assert np.isfinite(history.history["loss"]).all()
        assert np.isfinite(history.history["mlm_loss"]).all()
        assert np.isfinite(history.history["nsp_loss"]).all()
