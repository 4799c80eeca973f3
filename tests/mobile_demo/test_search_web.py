"""The web demo's semantic-search page (kbert/demo/web/search.html, search.js,
search_index.js): the JS index on its own in node, and the page in headless chromium on
a tiny embed export against Python ai_edge_litert and the NumPy ranking
(mobile_demo/web/test/search.test.mjs, search_reference.py).

Needs node, `npm ci --prefix mobile_demo/web` (playwright-core) and Debian's chromium
(/usr/bin/chromium, or KBERT_DEMO_CHROMIUM); skips with the reason otherwise.
"""

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from kbert.tokenization import SPECIAL_TOKENS

WEB = os.path.join(REPO, "mobile_demo", "web")
CHROMIUM = os.environ.get("KBERT_DEMO_CHROMIUM", "/usr/bin/chromium")
WORDS = ("the a cat dog bird sat ran flew on in over mat park tree red blue small big market stock price fell rose "
         "rain sun weekend password reset account phone battery").split()
VOCAB = [*SPECIAL_TOKENS, ".", ",", "?", *WORDS, "##s", "##ed"]
SEQ_LEN = 16
QUERIES = ["the cat sat on the mat", "stock price fell", "reset password?", "rain over the park", "blue bird"]


def corpus(n=200, seed=0):
    """`n` distinct sentences of 2-9 words (a few longer than SEQ_LEN tokens, cut),
    some with capitals, accents and words not in the vocabulary."""
    rng = np.random.default_rng(seed)
    texts, seen = [], set()
    while len(texts) < n:
        words = list(rng.choice(WORDS, rng.integers(2, 10)))
        if len(texts) % 17 == 5:
            words += list(rng.choice(WORDS, 12))  # over SEQ_LEN - 2 pieces: truncated
        if len(texts) % 13 == 2:
            words[0] = words[0].capitalize() + "s"
        if len(texts) % 19 == 7:
            words.append("Café naïve zebra")
        text = " ".join(words) + rng.choice([".", "?", ""])
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


@pytest.fixture(scope="module")
def embed_export(tmp_path_factory):
    import keras

    from kbert.config import BertConfig
    from kbert.export import export
    from kbert.model_dir import save_model
    from kbert.models import BertEncoder, BertTextEmbedder

    keras.utils.set_random_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                        max_position_embeddings=32)
    root = tmp_path_factory.mktemp("search_web")
    # Not normalized: the .tflite returns raw vectors and the page must normalise them.
    save_model(BertTextEmbedder(BertEncoder(config), normalize=False), root / "model", vocab=VOCAB,
               seq_len=SEQ_LEN)
    out = root / "tiny_embedder"
    export(str(root / "model"), out, formats=["tflite"], quantize=["float32"], latency_runs=1,
           progress=lambda m: None)
    return str(out)


def need_node(*packages):
    if shutil.which("node") is None:
        pytest.skip("node is not installed (the web demo's tests run with node >= 18)")
    for package in packages:
        if not os.path.isdir(os.path.join(WEB, "node_modules", package)):
            pytest.skip(f"{package} is not installed: run `npm ci --prefix mobile_demo/web`")


def load_reference_module():
    spec = importlib.util.spec_from_file_location("search_reference",
                                                  os.path.join(WEB, "test", "search_reference.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


INDEX_SCRIPT = r"""
import {VectorIndex, parseDocuments, unitVector} from './kbert/demo/web/search_index.js';
const input = JSON.parse(process.argv[1]);
const docs = parseDocuments(input.text);
const index = new VectorIndex(input.corpus[0].length);
input.corpus.forEach((v) => index.add(v));
console.log(JSON.stringify({docs, hits: input.queries.map((q) => index.search(q, input.k)),
  unit: Array.from(unitVector([3, 4])), zero: Array.from(unitVector([0, 0]))}));
"""


def test_js_index_ranks_like_kbert_cosine_top_k():
    """search_index.js: the documents `kbert search --corpus` reads, and
    kbert.embedding_metrics.cosine_top_k's ranking (ties in corpus order)."""
    from kbert.embedding_metrics import cosine_top_k

    need_node()
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(50, 8)) * rng.uniform(0.1, 5, (50, 1))  # norms far from 1
    vectors[7] = vectors[3] * 2.5  # the same direction: a tie, kept in corpus order
    queries = np.concatenate([rng.normal(size=(4, 8)), vectors[3:4]])
    text = "\ufefffirst\r\n\n  \nsecond line \r\n\tthird\n\n"
    payload = json.dumps({"text": text, "corpus": vectors.tolist(), "queries": queries.tolist(), "k": 10})
    result = subprocess.run(["node", "--input-type=module", "-e", INDEX_SCRIPT, payload], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["docs"] == {"texts": ["first", "second line ", "\tthird"], "lines": [1, 4, 5]}
    assert out["unit"] == [0.6, 0.8] and out["zero"] == [0, 0]
    indices, scores = cosine_top_k(queries, vectors, k=10)
    for hits, want, want_scores in zip(out["hits"], indices, scores):
        assert [h["index"] for h in hits] == want.tolist()
        np.testing.assert_allclose([h["score"] for h in hits], want_scores, atol=1e-6)
    assert [h["index"] for h in out["hits"][-1][:2]] == [3, 7]


def test_search_page_matches_python_litert_and_numpy(embed_export, tmp_path):
    need_node("playwright-core")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no chromium at {CHROMIUM}: apt-get install chromium (or set KBERT_DEMO_CHROMIUM)")
    pytest.importorskip("ai_edge_litert")
    texts = corpus()
    ref = load_reference_module().reference(embed_export, texts, QUERIES, "float32", k=10)
    # The export's raw vectors are not unit vectors (the page normalises); the random
    # encoder still tells sentences apart, and each query's best document leads its
    # second by more than the score tolerance (so the page's top 1 must be NumPy's).
    assert np.ptp(ref["raw_norms"]) > 0.1
    vectors = np.asarray(ref["corpus_vectors"])
    assert (vectors @ vectors.T).min() < 0.8
    assert all(r["scores"][0] - r["scores"][1] > 2e-4 for r in ref["rankings"])
    ref_path, result_path, shot = tmp_path / "ref.json", tmp_path / "result.json", tmp_path / "phone.png"
    ref_path.write_text(json.dumps(ref), encoding="utf-8")
    result = subprocess.run(["node", "--test", os.path.join(WEB, "test", "search.test.mjs")], cwd=REPO,
                            capture_output=True, text=True, timeout=600, env={
                                **os.environ, "KBERT_SEARCH_EXPORT": embed_export,
                                "KBERT_SEARCH_REFERENCE": str(ref_path), "KBERT_SEARCH_SCREENSHOT": str(shot),
                                "KBERT_SEARCH_RESULT": str(result_path), "KBERT_DEMO_PYTHON": sys.executable,
                                "KBERT_DEMO_CHROMIUM": CHROMIUM})
    output = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, output
    assert "# pass 7" in result.stdout and "# skipped 0" in result.stdout, output
    figures = json.loads(result_path.read_text())
    assert figures["info"]["seqLen"] == SEQ_LEN and figures["info"]["dim"] == 32
    assert figures["info"]["runtime"] == "wasm, threads"
    assert figures["pasted"]["sentences"] == 20 and figures["loaded"]["sentences"] == len(texts)
    assert figures["loaded"]["minCosine"] >= 0.9999 and figures["loaded"]["truncated"] > 0
    assert [q["query"] for q in figures["queries"]] == QUERIES
    assert figures["maxScoreDiff"] <= 1e-4 and figures["top1Agreement"] == 1.0, output
    assert figures["offline"] is True
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (390 * 3, 844 * 3)  # phone viewport @3x
