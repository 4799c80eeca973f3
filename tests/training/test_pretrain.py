import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO
from kbert.config import BertConfig
from kbert.data import PretrainingConfig
from kbert.errors import KbertError
from kbert.model_dir import load_model, read_model_dir
from kbert.training.pretrain import pretrain
from kbert.tokenization import learn_vocab

TEXT = [
    "The river rose after three days of rain.",
    "Farmers moved their cattle to the hills.",
    "By Sunday the water had reached the old mill.",
    "",
    "The orchestra tuned their instruments before the concert.",
    "A violinist played the opening bars alone.",
    "The audience stood and applauded at the end.",
    "",
    "Engineers tested the new bridge with heavy trucks.",
    "Sensors measured how far the deck moved.",
    "The bridge opened to traffic in spring.",
    "",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("corpus")
    path = directory / "corpus.txt"
    # Several documents so that random-next segments come from other documents.
    documents = []
    for i in range(12):
        documents += [line.replace("The", f"The {i}th") if line else line for line in TEXT]
    path.write_text("\n".join(documents[:-1]) + "\n", encoding="utf-8")
    vocab = directory / "vocab.txt"
    learn_vocab([path], 200, out=vocab, progress=False)
    return str(path), str(vocab)


TINY = BertConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_position_embeddings=64)


def test_pretrain_writes_model_dir_with_metrics(tmp_path, corpus):
    path, vocab = corpus
    result = pretrain(
        tmp_path / "model", vocab=vocab, corpus=[path], config=TINY,
        data_config=PretrainingConfig(seq_len=32, max_predictions_per_seq=5),
        batch_size=8, steps=6, checkpoint_every=3, eval_batches=2, holdout=0.2, progress=False,
    )
    info = read_model_dir(tmp_path / "model")
    assert info.task == "pretrain" and info.seq_len == 32
    metrics = info.metrics
    assert metrics["optimizer_iterations"] == 6
    for key in ("mlm_accuracy", "nsp_accuracy", "mlm_loss", "nsp_loss"):
        assert key in metrics["train"] and key in metrics["eval"]
    assert 0 <= metrics["eval"]["most_frequent_token_mlm_accuracy"] <= 1
    assert os.path.isdir(tmp_path / "model" / "logs")  # TensorBoard
    curve = tmp_path / "model" / "training_curve.png"
    assert curve.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and curve.stat().st_size > 5000
    assert not os.path.exists(str(tmp_path / "model") + ".work")
    assert load_model(tmp_path / "model").count_params() == result["model"].count_params()


def test_bad_line_deep_in_the_corpus_is_one_line_exit_2(tmp_path, corpus):
    path, vocab = corpus
    from kbert import io

    good = open(path, "rb").read()
    copies = io._SNIFF_BYTES // len(good) + 2  # past what the up-front check reads
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\n".join([good] * copies) + b"\n\nfine\n\xff\xfe broken\n")
    line = (b"\n".join([good] * copies)).count(b"\n") + 4
    out = tmp_path / "model"
    proc = subprocess.run(
        [sys.executable, "-m", "kbert.cli", "pretrain", "--corpus", str(bad), "--vocab", vocab,
         "--config", str(_tiny_config(tmp_path)), "--seq-len", "32", "--batch-size", "8",
         "--steps", "4", "--checkpoint-every", "2", "--holdout", "0", "--out", str(out)],
        capture_output=True, text=True, cwd=REPO,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {bad}:{line}: not valid UTF-8"), proc.stderr
    assert not out.exists()


def _tiny_config(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY.to_dict()), encoding="utf-8")
    return path


def test_pretrain_from_tfrecords_uses_their_settings(tmp_path, corpus):
    from kbert.data import write_tfrecords
    from kbert.tokenization import BertTokenizer

    path, vocab = corpus
    data = tmp_path / "data"
    write_tfrecords([path], BertTokenizer(vocab), data, PretrainingConfig(seq_len=24, max_predictions_per_seq=4),
                    num_shards=2, progress=False)
    # The CLI default seq_len (128) would not fit TINY; the data's 24 does.
    pretrain(tmp_path / "model", vocab=vocab, data=str(data), config=TINY, batch_size=4, steps=2,
             holdout=0.0, progress=False)
    assert read_model_dir(tmp_path / "model").seq_len == 24
    other = tmp_path / "vocab2.txt"
    other.write_text(open(vocab).read() + "extra\n")
    with pytest.raises(KbertError, match="written with a .*-token vocab"):
        pretrain(tmp_path / "m2", vocab=str(other), data=str(data), config=TINY, steps=2, progress=False)


def test_pretrain_rejects_sequence_longer_than_model(tmp_path, corpus):
    path, vocab = corpus
    with pytest.raises(KbertError, match=r"seq_len: 128 is outside 8\.\.64 \(the model's max_position_embeddings\)"):
        pretrain(tmp_path / "m", vocab=vocab, corpus=[path], config=TINY, data_config=PretrainingConfig(seq_len=128))
    assert not (tmp_path / "m").exists()


def _cli(corpus, vocab, out, steps):
    return [sys.executable, "-m", "kbert.cli", "pretrain", "--corpus", corpus, "--vocab", vocab,
            "--config", os.path.join(out + ".config.json"), "--out", out, "--seq-len", "32",
            "--max-predictions", "5", "--batch-size", "8", "--steps", str(steps), "--checkpoint-every", "5",
            "--eval-batches", "1", "--holdout", "0.2"]


def test_kill_9_then_rerun_resumes_step_counter_and_optimizer(tmp_path, corpus):
    path, vocab = corpus
    out = str(tmp_path / "model")
    TINY.to_json(out + ".config.json")
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    metadata = os.path.join(out + ".work", "backup", "training_metadata.json")
    proc = subprocess.Popen(_cli(path, vocab, out, 400), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(metadata) and json.load(open(metadata)).get("epoch", 0) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "training ended before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = json.load(open(metadata))["epoch"]
    assert saved >= 2 and not os.path.exists(out)

    # Same command again: resumes at the last checkpoint and finishes.
    done = subprocess.run(_cli(path, vocab, out, 400), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed_from = int(done.stdout.split("resuming from step ")[1].split()[0])
    assert resumed_from >= 10 and resumed_from % 5 == 0
    metrics = read_model_dir(out).metrics
    # The step counter (and with it the LR schedule) continued: 400 updates in all,
    # not 400 - resumed_from as a restart from scratch would give.
    assert metrics["optimizer_iterations"] == 400


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_local_workers_keep_identical_weights(tmp_path, corpus):
    path, vocab = corpus
    workers = [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3",
                   CUDA_VISIBLE_DEVICES="")
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(REPO, "tests", "pretrain_worker.py"), path, vocab,
             str(tmp_path / "model"), str(tmp_path / f"digest{index}.json")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))
    for proc in procs:
        output, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, output[-3000:]
    digests = [json.load(open(tmp_path / f"digest{i}.json")) for i in range(2)]
    assert digests[0]["iterations"] == digests[1]["iterations"] == 6
    assert digests[0]["digest"] == digests[1]["digest"]
    assert read_model_dir(tmp_path / "model").task == "pretrain"  # written by the chief only
