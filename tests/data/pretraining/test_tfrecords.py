import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kbert.data.pretraining import (
    PretrainingConfig,
    create_instances,
    dynamic_dataset,
    held_out_split,
    mask_tokens,
    read_data_info,
    read_documents,
    tfrecord_dataset,
    write_tfrecords,
)
from kbert.errors import DataError, KbertError

from .helpers import SMALL, batches, unmask, vocab_words, word_corpus, write


def test_tfrecords_round_trip(tok, special, sample, written):
    out, info = written
    assert sorted(os.listdir(out)) == [
        ".kbert.json",
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


def test_one_document_or_no_text_is_an_error_naming_the_file(tmp_path, tok):
    one = write(tmp_path / "one.txt", "A sentence.\nAnother one.\n")
    with pytest.raises(DataError, match="one.txt: the input has only one document"):
        write_tfrecords(one, tok, tmp_path / "out", progress=False)
    blank = write(tmp_path / "blank.txt", "\n  \n\n")
    with pytest.raises(DataError, match="blank.txt: no text"):
        write_tfrecords(blank, tok, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


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
