"""`kbert embed`, `kbert search`, `kbert finetune embed` and `kbert evaluate`
of an embed model: outputs through the guard, one-line errors."""

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from kbert.cli import main
from kbert.config import BertConfig
from kbert.model_dir import save_model
from kbert.models import BertClassifier, BertEncoder, BertTextEmbedder
from kbert.tokenization import SPECIAL_TOKENS

WORDS = "the cat sat on mat a dog ran in park red blue".split()
VOCAB = list(SPECIAL_TOKENS) + WORDS


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    keras.utils.set_random_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                        max_position_embeddings=32)
    root = tmp_path_factory.mktemp("embed_cli")
    save_model(BertTextEmbedder(BertEncoder(config)), root / "emb", vocab=VOCAB, seq_len=16)
    save_model(BertClassifier(BertEncoder(config), 2), root / "cls", vocab=VOCAB, labels=["a", "b"], seq_len=16)
    return root


def test_embed_writes_one_vector_per_line(dirs, tmp_path):
    from kbert.vectors import embed

    lines = ["the cat sat on the mat", "", "a dog ran in the park"]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run("embed", dirs / "emb", "--input", tmp_path / "in.txt", "--out", tmp_path / "v.npy", "--quiet")
    assert result.exit_code == 0, result.output
    assert "wrote 3 vectors of dimension 16" in result.output
    vectors = np.load(tmp_path / "v.npy", allow_pickle=False)
    np.testing.assert_allclose(vectors, embed(dirs / "emb", lines), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    # Its own output is replaced; a file kbert did not write is not.
    assert run("embed", dirs / "emb", "--input", tmp_path / "in.txt", "--out", tmp_path / "v.npy").exit_code == 0
    (tmp_path / "notes.npy").write_text("my notes", encoding="utf-8")
    result = run("embed", dirs / "emb", "--input", tmp_path / "in.txt", "--out", tmp_path / "notes.npy")
    assert result.exit_code == 2 and result.output.splitlines() == [
        f"Error: {tmp_path / 'notes.npy'}: exists and is not a vector file kbert wrote; use --overwrite to replace it"]
    assert (tmp_path / "notes.npy").read_text(encoding="utf-8") == "my notes"


def test_embed_needs_an_embed_model(dirs, tmp_path):
    (tmp_path / "in.txt").write_text("the cat\n", encoding="utf-8")
    result = run("embed", dirs / "cls", "--input", tmp_path / "in.txt", "--out", tmp_path / "v.npy")
    assert result.exit_code == 2 and len(result.output.splitlines()) == 1
    assert "a classify model directory; embeddings need an embed model" in result.output
    assert not (tmp_path / "v.npy").exists()


def test_search_prints_nearest_lines_and_saves_an_index(dirs, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat\n\na dog ran in the park\nred blue\n", encoding="utf-8")
    result = run("search", dirs / "emb", "--corpus", corpus, "--query", "the cat sat on the mat", "--query", "dog",
                 "-k", "2", "--index-out", tmp_path / "index", "--quiet")
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.output.splitlines()]
    assert [a["query"] for a in answers] == ["the cat sat on the mat", "dog"]
    first = answers[0]["results"]
    assert [r["rank"] for r in first] == [1, 2] and first[0]["line"] == 1 and first[0]["score"] == pytest.approx(1.0)
    assert {r["line"] for a in answers for r in a["results"]} <= {1, 3, 4}  # the blank line 2 is no document
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == [
        ".kbert.json", "corpus.txt", "index.json", "lines.npy", "vectors.npy"]
    again = run("search", dirs / "emb", "--index", tmp_path / "index", "--query", "the cat sat on the mat",
                "--query", "dog", "-k", "2")
    assert again.exit_code == 0 and [json.loads(x) for x in again.output.splitlines()] == answers
    # Another model's weights cannot search this index.
    other = run("search", dirs / "cls", "--index", tmp_path / "index", "--query", "cat")
    assert other.exit_code == 2 and len(other.output.splitlines()) == 1
    usage = run("search", dirs / "emb", "--query", "cat")
    assert usage.exit_code == 2 and "give --corpus FILE or --index DIR" in usage.output


def test_finetune_embed_bad_pairs_is_one_line(dirs, tmp_path):
    bad = tmp_path / "pairs.tsv"
    bad.write_text("anchor\tpositive\nthe cat\tthe mat\nthe dog\t\n", encoding="utf-8")
    result = run("finetune", "embed", "--init", dirs / "emb", "--train", bad, "--out", tmp_path / "out",
                 "--seq-len", "16")
    assert result.exit_code == 2
    assert result.output.splitlines() == [f"Error: {bad}:3: empty text in column positive"]
    assert not (tmp_path / "out").exists()


def test_evaluate_embed_model_on_a_retrieval_set(dirs, tmp_path):
    (tmp_path / "q.txt").write_text("the cat\na dog\n", encoding="utf-8")
    (tmp_path / "c.tsv").write_text("id\ttext\nd1\tthe cat sat on the mat\nd2\ta dog ran in the park\n",
                                    encoding="utf-8")
    (tmp_path / "r.tsv").write_text("query-id\tcorpus-id\n1\td1\n2\td2\n", encoding="utf-8")
    result = run("evaluate", dirs / "emb", "--data", tmp_path / "q.txt", "--corpus", tmp_path / "c.tsv",
                 "--relevance", tmp_path / "r.tsv")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["examples"] == 2 and metrics["recall@10"] == 1.0 and 0 <= metrics["recall@1"] <= 1
    result = run("evaluate", dirs / "emb", "--data", tmp_path / "q.txt", "--text-column", "x")
    assert result.exit_code == 2 and "text_column: does not apply to a embed model" in result.output
