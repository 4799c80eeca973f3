"""Sentence vectors from an embed model directory, and exact search over them.

`embed` turns texts into vectors with a `kbert.BertTextEmbedder` model
directory (`kbert import` of a sentence-transformers model, or `kbert
finetune embed`); `embed_file` writes one vector per line of a text file to a
`.npy` file. `VectorIndex` holds a corpus' unit vectors and finds the nearest
ones to a query by exact cosine (one matrix product, NumPy): fine up to about
10^5-10^6 vectors of 384 floats (1.5 GB at 10^6) and a few queries at a time.
Beyond that, move the vectors (`VectorIndex.vectors`, or the saved
`vectors.npy`) to an approximate nearest-neighbour library such as FAISS
(`faiss-cpu`; `IndexFlatIP` is this exact search, `IndexHNSWFlat` or
`IndexIVFFlat` the approximate ones).

Outputs go through kbert's output guard (`kbert.outputs`): a vector file or
saved index is written aside and renamed into place; an existing file or
directory is replaced only if kbert wrote one of that kind, else with
`overwrite=True`.
"""

import os

import numpy as np

from kbert.errors import DataError, KbertError
from kbert.outputs import output_dir, output_file, writes_output

INDEX_FILE = "index.json"


def _embedder(model_dir):
    from kbert.model_dir import load_model, read_model_dir

    info = read_model_dir(model_dir)
    if info.task != "embed":
        raise KbertError(f"{info.path}: a {info.task} model directory; embeddings need an embed model "
                         "(kbert import --from hf of a sentence-transformers model, or kbert finetune embed)")
    return info, load_model(model_dir)


def embed(model_dir, texts, batch_size=64, seq_len=None, progress=False):
    """The vectors of `texts` from an embed model directory.

    Args:
        model_dir: an embed model directory.
        texts: a string or a list of strings.
        batch_size: texts per model call (longest first, each batch cut to
            its longest text).
        seq_len: tokens per text, longer ones truncated (default: the model
            directory's).
        progress: show a progress bar on stderr.

    Returns:
        float32 array `[len(texts), hidden]` (unit vectors when the model
        normalizes, as sentence-transformers' all-MiniLM-L6-v2 does).

    Examples:
    ```python
    vectors = kbert.embed("runs/minilm", ["A man plays a guitar.", "Someone is playing music."])
    float(vectors[0] @ vectors[1])   # the cosine of two normalized vectors
    ```
    """
    from kbert.config import check_seq_len
    from kbert.tasks.embed import embed_texts

    texts = [texts] if isinstance(texts, str) else list(texts)
    info, model = _embedder(model_dir)
    seq_len = check_seq_len(info.seq_len if seq_len is None else seq_len, info.config)
    return embed_texts(model, info.tokenizer(), texts, seq_len, batch_size, progress=progress)


@writes_output("vectors", inputs=("model_dir", "input"))
def embed_file(model_dir, input, out, batch_size=64, seq_len=None, progress=False, overwrite=False):
    """Write the vector of every line of a text file to a `.npy` file.

    Args:
        model_dir: an embed model directory.
        input: UTF-8 text file; line i (blank lines too) gets row i - 1.
        out: the `.npy` file to write (float32 `[lines, hidden]`).
        batch_size, seq_len, progress: as for `embed`.
        overwrite: replace an existing `out` that kbert did not write
            (never an input).

    Returns:
        `{"out": out, "vectors": count, "dim": hidden}`.

    Examples:
    ```python
    kbert.vectors.embed_file("runs/minilm", "sentences.txt", "vectors.npy")
    ```
    """
    from kbert.io import iter_text_lines

    texts = [line for _, line in iter_text_lines(input)]
    vectors = embed(model_dir, texts, batch_size=batch_size, seq_len=seq_len, progress=progress)
    with output_file(out, "vectors", inputs=[model_dir, input], overwrite=overwrite) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, vectors, allow_pickle=False)
    return {"out": os.fspath(out), "vectors": int(vectors.shape[0]), "dim": int(vectors.shape[1])}


def _weights_digest(model_dir):
    """sha256 of the model's weights file: which model an index's vectors came from."""
    from kbert.io import sha256_file
    from kbert.model_dir import MODEL_FILE

    return sha256_file(os.path.join(os.fspath(model_dir), MODEL_FILE))


class VectorIndex:
    """Exact cosine search over the vectors of a corpus (NumPy, in memory).

    Args:
        vectors: float `[n, dim]` (normalized here).
        texts: the n documents.
        lines: where each document came from (1-based line numbers), or None.
        model_dir: the embed model directory the vectors came from.
        seq_len: the tokens per text they were embedded with.

    Examples:
    ```python
    index = kbert.VectorIndex.build("runs/minilm", "corpus.txt")
    index.search("runs/minilm", ["how do I reset my password?"], k=5)[0][0]
    # {"rank": 1, "score": 0.71, "index": 17, "line": 18, "text": "To change your password, ..."}
    index.save("runs/corpus_index")      # vectors.npy, corpus.txt, lines.npy, index.json
    index = kbert.VectorIndex.load("runs/corpus_index")
    ```
    """

    def __init__(self, vectors, texts, lines=None, model_dir=None, seq_len=None, digest=None):
        from kbert.embedding_metrics import normalize_rows

        self.vectors = normalize_rows(vectors)
        self.texts = list(texts)
        self.lines = list(range(1, len(self.texts) + 1)) if lines is None else [int(x) for x in lines]
        if not (len(self.vectors) == len(self.texts) == len(self.lines)):
            raise KbertError(f"{len(self.vectors)} vectors, {len(self.texts)} texts and {len(self.lines)} lines")
        self.model_dir, self.seq_len, self.digest = model_dir, seq_len, digest

    def __len__(self):
        return len(self.texts)

    @classmethod
    def build(cls, model_dir, corpus, batch_size=64, seq_len=None, progress=False):
        """Embed a corpus with an embed model directory.

        Args:
            model_dir: an embed model directory.
            corpus: a UTF-8 text file (one document a line; blank lines are
                skipped, the others keep their line number) or a list of strings.
            batch_size, seq_len, progress: as for `kbert.embed`.
        """
        from kbert.io import iter_text_lines

        if isinstance(corpus, (str, os.PathLike)):
            rows = [(number, line) for number, line in iter_text_lines(corpus) if line.strip()]
            if not rows:
                raise DataError(f"{os.fspath(corpus)}: no documents (every line is blank)")
            lines, texts = [r[0] for r in rows], [r[1] for r in rows]
        else:
            texts = list(corpus)
            lines = list(range(1, len(texts) + 1))
            if not texts:
                raise KbertError("corpus: no documents")
        from kbert.config import check_seq_len
        from kbert.tasks.embed import embed_texts

        info, model = _embedder(model_dir)
        seq_len = check_seq_len(info.seq_len if seq_len is None else seq_len, info.config)
        vectors = embed_texts(model, info.tokenizer(), texts, seq_len, batch_size, progress=progress)
        return cls(vectors, texts, lines, model_dir=os.path.abspath(os.fspath(model_dir)), seq_len=seq_len,
                   digest=_weights_digest(model_dir))

    def search(self, model_dir, queries, k=10, batch_size=64):
        """The `k` nearest documents of each query, best first.

        Args:
            model_dir: the embed model directory the index was built with
                (it embeds the queries; another model's weights are refused).
            queries: a string or list of strings.
            k: documents per query.

        Returns:
            Per query, a list of `{"rank", "score", "index", "line", "text"}`
            (`score`: the cosine).
        """
        queries = [queries] if isinstance(queries, str) else list(queries)
        if not int(k) >= 1:
            raise KbertError(f"k: expected a positive number, got {k!r}")
        if self.digest is not None and _weights_digest(model_dir) != self.digest:
            raise KbertError(f"{os.fspath(model_dir)}: not the model this index was built with "
                             f"({self.model_dir}): its weights differ")
        vectors = embed(model_dir, queries, batch_size=batch_size, seq_len=self.seq_len)
        return self.nearest(vectors, k)

    def nearest(self, query_vectors, k=10):
        """`search` for query vectors already computed (float `[n, dim]`)."""
        from kbert.embedding_metrics import cosine_top_k

        query_vectors = np.asarray(query_vectors, np.float32).reshape(-1, self.vectors.shape[1])
        # Bounded memory: at most ~64M similarities per matrix product.
        chunk = max(1, min(1024, (1 << 26) // max(len(self.vectors), 1)))
        indices, scores = cosine_top_k(query_vectors, self.vectors, k=k, chunk=chunk)
        return [[{"rank": r + 1, "score": float(s), "index": int(i), "line": self.lines[i], "text": self.texts[i]}
                 for r, (i, s) in enumerate(zip(row_i, row_s))] for row_i, row_s in zip(indices, scores)]

    @writes_output("vector_index")
    def save(self, out, overwrite=False, inputs=()):
        """Write the index as a directory: `vectors.npy` (float32 unit
        vectors), `corpus.txt` (one document a line), `lines.npy` (their
        line numbers) and `index.json` (model directory, weights digest,
        seq_len, count, dimension)."""
        from kbert.io import write_json
        from kbert.version import __version__

        if any("\n" in t or "\r" in t for t in self.texts):
            raise KbertError("a document holds a line break: corpus.txt keeps one document a line")
        with output_dir(out, "vector_index", inputs=inputs, overwrite=overwrite) as tmp:
            with open(os.path.join(tmp, "vectors.npy"), "wb") as f:
                np.save(f, self.vectors, allow_pickle=False)
            with open(os.path.join(tmp, "lines.npy"), "wb") as f:
                np.save(f, np.asarray(self.lines, np.int64), allow_pickle=False)
            with open(os.path.join(tmp, "corpus.txt"), "w", encoding="utf-8", newline="\n") as f:
                f.write("".join(t + "\n" for t in self.texts))
            write_json(os.path.join(tmp, INDEX_FILE), {
                "kbert_version": __version__, "model_dir": self.model_dir, "weights_sha256": self.digest,
                "seq_len": self.seq_len, "count": len(self), "dim": int(self.vectors.shape[1]),
            })
        return os.fspath(out)

    @classmethod
    def load(cls, path):
        """An index `save` wrote (read without unpickling)."""
        from kbert.io import iter_text_lines, read_json

        path = os.fspath(path)
        meta = read_json(os.path.join(path, INDEX_FILE))
        if not isinstance(meta, dict):
            raise DataError(f"{os.path.join(path, INDEX_FILE)}: expected a JSON object")
        arrays = {}
        for name in ("vectors", "lines"):
            file = os.path.join(path, f"{name}.npy")
            try:
                arrays[name] = np.load(file, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise DataError(f"{file}: cannot read ({e})") from None
        texts = [line for _, line in iter_text_lines(os.path.join(path, "corpus.txt"))]
        vectors = arrays["vectors"]
        if vectors.ndim != 2 or len(vectors) != len(texts) or len(arrays["lines"]) != len(texts):
            raise DataError(f"{path}: vectors.npy, lines.npy and corpus.txt disagree in length "
                            f"({vectors.shape}, {len(arrays['lines'])}, {len(texts)})")
        return cls(vectors, texts, arrays["lines"], model_dir=meta.get("model_dir"), seq_len=meta.get("seq_len"),
                   digest=meta.get("weights_sha256"))
