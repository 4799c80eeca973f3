"""Extractive question answering data: SQuAD files to BERT windows and back.

The recipe is Google's `run_squad.py` (google-research/bert): each question is
packed as `[CLS] question [SEP] context window [SEP]`, a long context is cut
into overlapping windows (`doc_stride`), a token's "max context" window is the
one where it has the most context on both sides, and the answer of an example
is the best-scoring `start_logit + end_logit` span over all of its windows
(SQuAD 2.0: or no answer, when the `[CLS]` null score wins by more than a
threshold).

Why we write our own instead of reusing a library:

* Google's script whitespace-splits contexts, WordPiece-tokenizes each word and
  maps predictions back to the words with a heuristic (`get_final_text`). We
  tokenize whole contexts with `BertTokenizer.tokenize_with_char_offsets` (tf-text,
  in large batches, the same normalization as training and serving) and keep
  every context token's character range, so an answer span maps to tokens and
  back to the exact characters of the context, as Hugging Face's `run_qa.py`
  does with its offset mapping. Hugging Face's pipeline needs its fast
  (Rust) tokenizer, whose normalization differs from ours in small ways (see
  `kbert.tokenization`); keras-hub has no SQuAD pipeline.
* The windows and max-context flags come from `BertTokenizer.pack_windows`,
  the in-graph layout the QA serving signature uses too, for all examples in
  a few batched calls; `postprocess` is NumPy and scores every allowed span
  at once (`kbert.tasks.qa.select_spans` is its TensorFlow twin, which
  `kbert.predict` and serving run; tests hold the two to the same answers).

Deliberate differences from Google's script:

* Answers map to tokens by character offsets: the first token whose end is
  after the answer start, the last token that starts before the answer end.
  Google's `_improve_answer_span` search is not needed.
* `postprocess` scores *every* allowed (start, end) pair of a window rather
  than only pairs of the `n_best` highest start and end logits. It never
  finds a lower-scoring answer than Google's search, and always finds one
  when the context has a token (Google can end with "empty" when the top
  starts all fall on the question).
* An example whose context has no tokens still gets one window (with no
  context tokens), so every evaluation question gets a prediction ("").
* A training answer whose text is not at `answer_start` is looked up in the
  context (the occurrence nearest to `answer_start`, also with surrounding
  whitespace stripped); when it is not there, or covers no token, the example
  is left out of training (`SquadFeatures.skipped`), as Google's script skips
  answers it cannot find in the tokenized context. The official v1.1 dev file
  has no such answer (all 34,726 answers match their `answer_start`).
"""

import itertools
import os
from typing import NamedTuple

import numpy as np

from kbert.errors import DataError, KbertError
from kbert.io import read_json

# Contexts tokenized per tokenizer call (a call costs milliseconds whatever
# its size; SQuAD contexts are ~150 tokens).
_TOKENIZE_BATCH = 2048


class SquadExample(NamedTuple):
    """One question about one context.

    Attributes:
        id: the question id (`qas[].id`), unique in a file.
        title: the article title ("" when the file has none).
        question: the question text.
        context: the paragraph the answer is taken from.
        answers: list of `{"text": str, "answer_start": int}`, `answer_start`
            a character offset into `context`. Evaluation files have several
            answers per question; training uses the first one.
        is_impossible: SQuAD 2.0 question without an answer in the context.
    """

    id: str
    title: str
    question: str
    context: str
    answers: list
    is_impossible: bool


# --- reading ---------------------------------------------------------------------


def read_squad(path, articles=None):
    """Read a SQuAD v1.1 or v2.0 JSON file.

    The format is `{"data": [article]}`, an article `{"title", "paragraphs":
    [{"context", "qas": [{"id", "question", "answers": [{"text",
    "answer_start"}], "is_impossible"}]}]}`. `answers` may be missing (a file
    to predict on), `is_impossible` defaults to false and v2's
    `plausible_answers` is ignored. An answer whose text is not found at
    `answer_start` is kept as it is: evaluation compares texts only, and
    `encode_squad` looks such training answers up in the context.

    Args:
        path: str or path-like. The JSON file.
        articles: optional `slice` (or sequence of ints) of article indices
            to read, e.g. `slice(0, 38)`. Error messages keep the original
            indices (`data[40]...`).

    Returns:
        A list of `SquadExample`, in file order.

    Raises:
        DataError: the file is missing or not JSON, or a field is missing or
            has the wrong type, an `answer_start` lies outside its context or a
            question id appears twice. The message names the file and the JSON
            path of the field, e.g. `dev.json: data[3].paragraphs[0].qas[5]
            .answers[0].answer_start: expected an integer, got str`.

    Examples:

    >>> train = read_squad("dev-v1.1.json", articles=slice(0, 38))
    >>> train[0].question, train[0].answers[0]["text"]
    ('Which NFL team represented the AFC at Super Bowl 50?', 'Denver Broncos')
    """
    path = os.fspath(path)
    root = read_json(path)
    name = path

    def fail(where, message):
        raise DataError(f"{name}: {where}: {message}")

    if not isinstance(root, dict):
        raise DataError(f"{name}: expected a JSON object with a \"data\" list, got {_kind(root)}")
    data = _field(root, "data", list, "", fail)
    if articles is None:
        indices = range(len(data))
    elif isinstance(articles, slice):
        indices = range(len(data))[articles]
    else:
        indices = [int(i) for i in articles]
        for i in indices:
            if not -len(data) <= i < len(data):
                raise KbertError(f"{name}: article index {i} out of range ({len(data)} articles)")

    examples = []
    seen = {}
    for a in indices:
        where_a = f"data[{a}]"
        article = _object(data[a], where_a, fail)
        title = _field(article, "title", str, where_a, fail, default="")
        paragraphs = _field(article, "paragraphs", list, where_a, fail)
        for p, paragraph in enumerate(paragraphs):
            where_p = f"{where_a}.paragraphs[{p}]"
            paragraph = _object(paragraph, where_p, fail)
            context = _field(paragraph, "context", str, where_p, fail)
            qas = _field(paragraph, "qas", list, where_p, fail)
            for q, qa in enumerate(qas):
                where_q = f"{where_p}.qas[{q}]"
                qa = _object(qa, where_q, fail)
                qid = _field(qa, "id", str, where_q, fail)
                if qid in seen:
                    fail(f"{where_q}.id", f"duplicate id {qid!r} (first at {seen[qid]})")
                seen[qid] = where_q
                question = _field(qa, "question", str, where_q, fail)
                impossible = _field(qa, "is_impossible", bool, where_q, fail, default=False)
                answers = []
                for n, answer in enumerate(_field(qa, "answers", list, where_q, fail, default=[])):
                    where_n = f"{where_q}.answers[{n}]"
                    answer = _object(answer, where_n, fail)
                    text = _field(answer, "text", str, where_n, fail)
                    start = _field(answer, "answer_start", int, where_n, fail)
                    if not 0 <= start <= len(context):
                        fail(
                            f"{where_n}.answer_start",
                            f"{start} is outside the context (length {len(context)})",
                        )
                    answers.append({"text": text, "answer_start": start})
                examples.append(SquadExample(qid, title, question, context, answers, impossible))
    return examples


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "an object"}


def _kind(value):
    return {str: "str", int: "int", float: "float", bool: "bool", list: "list", dict: "object"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _object(value, where, fail):
    if not isinstance(value, dict):
        fail(where, f"expected an object, got {_kind(value)}")
    return value


_MISSING = object()


def _field(values, key, kind, where, fail, default=_MISSING):
    path = f"{where}.{key}" if where else key
    if key not in values:
        if default is _MISSING:
            fail(where or "top level", f"missing field {key!r}")
        return default
    value = values[key]
    # bool is an int in Python, but `"answer_start": true` is a broken file.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        fail(path, f"expected {_TYPE_NAMES[kind]}, got {_kind(value)}")
    return value


# --- encoding --------------------------------------------------------------------


class SquadFeatures:
    """Model windows of SQuAD examples, as NumPy arrays (one row per window).

    Attributes:
        token_ids, segment_ids, padding_mask: int32 `[n, seq_len]` model inputs,
            `[CLS] question [SEP] context window [SEP]` then padding; segment 1
            is the context window and its `[SEP]`.
        start_positions, end_positions: int32 `[n]`, the answer's first and last
            token in the window when the whole answer is inside it, else 0
            (`[CLS]`); 0 also for impossible questions and examples without
            an answer.
        example_index: int32 `[n]`, the window's example (index into the list
            given to `encode_squad`). Windows of an example are consecutive.
        token_char_start, token_char_end: int32 `[n, seq_len]`, the character
            range `context[start:end]` of each context token; -1 for question,
            special and padding tokens.
        max_context: bool `[n, seq_len]`, true for the context tokens whose
            window is this one: the window where they have the most context
            (each context token of an example is marked in exactly one window).
        skipped: list of the example indices left out (training only: the
            answer could not be found in the context).
    """

    FIELDS = (
        "token_ids", "segment_ids", "padding_mask", "start_positions", "end_positions",
        "example_index", "token_char_start", "token_char_end", "max_context",
    )

    def __init__(self, skipped=(), **arrays):
        missing = set(self.FIELDS) - set(arrays)
        if missing:
            raise KbertError(f"SquadFeatures: missing {', '.join(sorted(missing))}")
        for key in self.FIELDS:
            setattr(self, key, arrays[key])
        self.skipped = list(skipped)

    def __len__(self):
        return len(self.token_ids)

    @property
    def seq_len(self):
        return self.token_ids.shape[1]

    @property
    def inputs(self):
        """The model inputs: a dict of the three int32 `[n, seq_len]` arrays."""
        return {k: getattr(self, k) for k in ("token_ids", "segment_ids", "padding_mask")}

    @property
    def targets(self):
        """Training targets keyed like `BertQuestionAnswerer`'s outputs."""
        return {"start_logits": self.start_positions, "end_logits": self.end_positions}

    def __repr__(self):
        return f"SquadFeatures({len(self)} windows, seq_len={self.seq_len}, skipped={len(self.skipped)})"


def encode_squad(examples, tokenizer, seq_len=384, doc_stride=128, max_query_length=64, training=True):
    """Turn SQuAD examples into BERT windows (Google's `run_squad.py` recipe).

    The question's pieces are cut to `max_query_length`. A window holds
    `seq_len - len(question) - 3` context tokens; the next window starts
    `min(length, doc_stride)` tokens further, until one reaches the end of the
    context (`BertTokenizer.pack_windows`, the layout QA serving uses).
    Answer positions come from the first answer of an example.

    Args:
        examples: a list of `SquadExample`.
        tokenizer: a `kbert.tokenization.BertTokenizer`.
        seq_len: int. Length of every window.
        doc_stride: int. How far each window starts after the previous one,
            in context tokens.
        max_query_length: int. Question pieces kept.
        training: bool. Leave out (and list in `skipped`) the answerable
            examples whose answer cannot be found in the context. With
            false, every example gets at least one window; positions are
            filled in both cases.

    Returns:
        A `SquadFeatures`.

    Raises:
        KbertError: `seq_len`, `doc_stride` or `max_query_length` out of range
            or a question too long to leave room for a context token.

    Examples:

    >>> features = encode_squad(read_squad("dev-v1.1.json"), tokenizer)
    >>> model.fit(features.inputs, features.targets, batch_size=32)
    """
    for label, value, low in (("seq_len", seq_len, 4), ("doc_stride", doc_stride, 1),
                              ("max_query_length", max_query_length, 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise KbertError(f"{label}: expected an integer >= {low}, got {value!r}")
    examples = list(examples)
    contexts = {}
    for example in examples:
        contexts.setdefault(example.context, len(contexts))
    context_tokens = _tokenize_contexts(tokenizer, list(contexts))
    questions = _tokenize(tokenizer, [e.question for e in examples])

    # Which examples get windows, their questions and answer tokens; then the
    # windows themselves from the tokenizer (the QA serving signature's too).
    kept, queries, answers = [], [], []
    skipped = []
    for index, example in enumerate(examples):
        query = questions[index][:max_query_length]
        if len(query) + 4 > seq_len:
            raise KbertError(
                f"question {example.id!r} has {len(query)} tokens (after max_query_length "
                f"{max_query_length}), which leaves no room for context in seq_len {seq_len}: "
                f"use max_query_length <= {seq_len - 4}"
            )
        answer = None
        if not example.is_impossible and example.answers:
            _, char_start, char_end = context_tokens[contexts[example.context]]
            answer = _answer_tokens(example, char_start, char_end)
        if training and answer is None and not example.is_impossible:
            skipped.append(index)
            continue
        kept.append(index)
        queries.append(query)
        answers.append(answer or (-1, -1))
    if training and examples and not kept:
        first = examples[skipped[0]]
        given = f"answer {first.answers[0]['text']!r} at {first.answers[0]['answer_start']}" if first.answers \
            else "no answer"
        raise DataError(f"none of the {len(examples)} training questions has an answer found in its context "
                        f"(first: question {first.id!r}, {given}): check the answers' text and answer_start")

    parts = []
    for a in range(0, len(kept), _TOKENIZE_BATCH):
        chunk = kept[a:a + _TOKENIZE_BATCH]
        part = _windows(tokenizer, [context_tokens[contexts[examples[i].context]] for i in chunk],
                        queries[a:a + _TOKENIZE_BATCH], answers[a:a + _TOKENIZE_BATCH], seq_len, doc_stride)
        part["example_index"] = np.asarray(chunk, np.int32)[part["example_index"]]
        parts.append(part)
    arrays = {key: np.concatenate([part[key] for part in parts]) if parts else empty
              for key, empty in _empty_windows(seq_len).items()}
    return SquadFeatures(skipped=skipped, **arrays)


def _windows(tokenizer, contexts, queries, answers, seq_len, doc_stride):
    """SquadFeatures arrays of some examples (`example_index` into the lists)."""
    import tensorflow as tf

    lengths = [len(ids) for ids, _, _ in contexts]
    layout = tokenizer.pack_windows(
        tf.RaggedTensor.from_row_lengths(np.concatenate([np.zeros(0, np.int32), *queries]),
                                         [len(q) for q in queries]),
        tf.RaggedTensor.from_row_lengths(np.concatenate([np.zeros(0, np.int32), *(c[0] for c in contexts)]),
                                         lengths),
        seq_len, doc_stride,
    )
    out = {k: v.numpy() for k, v in layout.items()}
    example, index = out["example_index"], out.pop("context_index")
    # Character ranges of the context pieces, looked up in the examples'
    # concatenated offsets.
    flat = np.maximum(index, 0) + np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)[example, None]
    context = index >= 0
    for key, column in (("token_char_start", 1), ("token_char_end", 2)):
        values = np.concatenate([*(c[column] for c in contexts), np.zeros(1, np.int32)])  # never empty
        out[key] = np.where(context, values[np.minimum(flat, len(values) - 1)], -1).astype(np.int32)
    # Answer positions where the whole answer is inside the window.
    first, last = np.asarray(answers, np.int64).reshape(-1, 2)[example].T
    at_first = context & (index == first[:, None])
    inside = at_first.any(axis=1) & (context & (index == last[:, None])).any(axis=1)
    out["start_positions"] = np.where(inside, at_first.argmax(axis=1), 0).astype(np.int32)
    out["end_positions"] = np.where(
        inside, (context & (index == last[:, None])).argmax(axis=1), 0).astype(np.int32)
    return out


def _empty_windows(seq_len):
    def square(dtype, fill):
        return np.full((0, seq_len), fill, dtype)

    return {
        "token_ids": square(np.int32, 0), "segment_ids": square(np.int32, 0), "padding_mask": square(np.int32, 0),
        "start_positions": np.zeros(0, np.int32), "end_positions": np.zeros(0, np.int32),
        "example_index": np.zeros(0, np.int32), "token_char_start": square(np.int32, -1),
        "token_char_end": square(np.int32, -1), "max_context": square(bool, False),
    }


def _tokenize(tokenizer, texts):
    """Wordpiece ids of each text, as int32 arrays."""
    out = []
    for i in range(0, len(texts), _TOKENIZE_BATCH):
        ids = tokenizer.tokenize(_as_bytes(texts[i:i + _TOKENIZE_BATCH]))
        flat = ids.flat_values.numpy().astype(np.int32)
        splits = ids.row_splits.numpy()
        out.extend(flat[a:b] for a, b in zip(splits[:-1], splits[1:]))
    return out


def _tokenize_contexts(tokenizer, texts):
    """(ids, char_start, char_end) int32 arrays of each text's tokens."""
    out = []
    for i in range(0, len(texts), _TOKENIZE_BATCH):
        ids, begin, end = tokenizer.tokenize_with_char_offsets(_as_bytes(texts[i:i + _TOKENIZE_BATCH]))
        splits = ids.row_splits.numpy()
        flat = [t.flat_values.numpy().astype(np.int32) for t in (ids, begin, end)]
        out.extend(tuple(values[a:b] for values in flat) for a, b in itertools.pairwise(splits))
    return out


def _as_bytes(texts):
    # surrogatepass: JSON may hold lone surrogates ("\ud83d"), which strict
    # UTF-8 cannot encode; the tokenizer turns their bytes into U+FFFD and
    # drops them.
    return np.array([t.encode("utf-8", "surrogatepass") for t in texts], dtype=object)


def _answer_tokens(example, char_start, char_end):
    """(first, last) context token of the first answer, or None."""
    answer = example.answers[0]
    span = _locate(example.context, answer["text"], answer["answer_start"])
    if span is None:
        return None
    begin, end = span
    first = int(np.searchsorted(char_end, begin, side="right"))
    last = int(np.searchsorted(char_start, end, side="left")) - 1
    if first > last:  # only whitespace or dropped characters
        return None
    return first, last


def _locate(context, text, start):
    """Character span of an answer: at `start`, else its nearest occurrence."""
    if text and context[start:start + len(text)] == text:
        return start, start + len(text)
    for candidate in (text, text.strip()):
        if not candidate:
            continue
        found = []
        at = context.find(candidate)
        while at >= 0:
            found.append(at)
            at = context.find(candidate, at + 1)
        if found:
            at = min(found, key=lambda f: abs(f - start))
            return at, at + len(candidate)
    return None


# --- predictions -----------------------------------------------------------------


def postprocess(examples, features, start_logits, end_logits, n_best=20, max_answer_length=30,
                version_2=False, null_threshold=0.0):
    """Pick each question's answer from the windows' start and end logits.

    A span is allowed when both its tokens are context tokens of one window,
    `start <= end`, it has at most `max_answer_length` tokens and its start
    token has its max context in that window; its score is `start_logit +
    end_logit`, and the answer is the best span over all windows of the
    example. With `version_2`, the null score is the smallest `[CLS]` score
    `start_logits[0] + end_logits[0]` over the windows, and the answer is ""
    when `null_score - best_span_score > null_threshold` (or no span is
    allowed).

    Args:
        examples: the list of `SquadExample` given to `encode_squad`.
        features: its `SquadFeatures`.
        start_logits, end_logits: float `[n, seq_len]`, the model's outputs for
            the features, in order.
        n_best: int. Answers listed in `n_best` (distinct texts).
        max_answer_length: int. Longest answer, in tokens.
        version_2: bool. SQuAD 2.0: allow "no answer".
        null_threshold: float. Margin the null score needs to win.

    Returns:
        A dict question id -> `{"text", "score", "start", "end", "null_score",
        "n_best"}`: `text == context[start:end]` (`start == end == -1` for
        ""), `score` its score (the null score for ""), `n_best` a list of up to
        `n_best` `{"text", "score", "probability"}` in score order
        (probability: softmax over the list; with `version_2` the "" entry is
        in it). Examples without windows (skipped in training) are left out.
        `prediction_texts` turns it into the `{id: text}` that the SQuAD
        metrics take.

    Raises:
        KbertError: logits of the wrong shape, or `n_best` or
            `max_answer_length` below 1.

    Examples:

    >>> outputs = model.predict(features.inputs)
    >>> answers = postprocess(examples, features, outputs["start_logits"],
    ...                       outputs["end_logits"])
    >>> prediction_texts(answers)["56be4db0acb8001400a502ec"]
    'Denver Broncos'
    """
    start_logits = np.asarray(start_logits, np.float32)
    end_logits = np.asarray(end_logits, np.float32)
    shape = features.token_ids.shape
    for label, logits in (("start_logits", start_logits), ("end_logits", end_logits)):
        if logits.shape != shape:
            raise KbertError(f"{label}: expected shape {shape} (the features), got {logits.shape}")
    for label, value in (("n_best", n_best), ("max_answer_length", max_answer_length)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise KbertError(f"{label}: expected an integer >= 1, got {value!r}")

    seq_len = shape[1]
    # Span (s, s + d) for d < max_answer_length: end logits of the d-th next
    # token, -inf past the end of the row.
    width = min(max_answer_length, seq_len)
    start_ok = np.where(features.max_context, start_logits, -np.inf)
    end_ok = np.where(features.token_char_start >= 0, end_logits, -np.inf)
    padded = np.concatenate([end_ok, np.full((len(end_ok), width - 1), -np.inf, np.float32)], axis=1)
    end_windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=1)  # [n, seq_len, width]
    null_scores = start_logits[:, 0] + end_logits[:, 0]

    order = np.argsort(features.example_index, kind="stable")
    bounds = np.flatnonzero(np.diff(features.example_index[order])) + 1
    results = {}
    for rows in np.split(order, bounds) if len(order) else []:
        example = examples[int(features.example_index[rows[0]])]
        # Only the columns where spans can start (3x fewer than seq_len on SQuAD).
        columns = np.flatnonzero(features.max_context[rows].any(axis=0))
        first, last = (columns[0], columns[-1] + 1) if len(columns) else (0, 0)
        scores = start_ok[rows, first:last, None] + end_windows[rows, first:last]
        scores = scores.reshape(-1)
        finite = int(np.isfinite(scores).sum())
        # Distinct texts are needed; a few times n_best spans are plenty.
        top = min(finite, 3 * n_best)
        picks = np.zeros(0, np.int64)
        if top:
            # Every span scoring at least the top-th best, best first and, on
            # equal scores, in (window, start, length) order: the first such
            # span wins, as in the QA serving signature.
            kth = np.partition(scores, len(scores) - top)[len(scores) - top]
            picks = np.flatnonzero(scores >= kth)
            picks = picks[np.argsort(-scores[picks], kind="stable")][:top]
        row, token, length = np.unravel_index(picks, (len(rows), last - first, width))
        token += first
        begins = features.token_char_start[rows[row], token].tolist()
        ends = features.token_char_end[rows[row], token + length].tolist()
        candidates = []
        texts = set()
        for begin, end, score in zip(begins, ends, scores[picks].tolist()):
            text = example.context[begin:end]
            if text in texts:
                continue
            texts.add(text)
            candidates.append({"text": text, "score": score, "start": begin, "end": end})
            if len(candidates) == n_best:
                break
        null_score = float(null_scores[rows].min())
        null = {"text": "", "score": null_score, "start": -1, "end": -1}
        best = candidates[0] if candidates else null
        if version_2:
            if not candidates or null_score - best["score"] > null_threshold:
                best = null
            if "" not in texts:
                candidates = sorted(candidates + [null], key=lambda c: -c["score"])[:n_best]
        listed = candidates or [null]
        weights = np.exp(np.array([c["score"] for c in listed]) - max(c["score"] for c in listed))
        weights /= weights.sum()
        results[example.id] = {
            "text": best["text"],
            "score": best["score"],
            "start": best["start"],
            "end": best["end"],
            "null_score": null_score,
            "n_best": [
                {"text": c["text"], "score": c["score"], "probability": float(p)}
                for c, p in zip(listed, weights)
            ],
        }
    return results


def prediction_texts(predictions):
    """`{question id: answer text}` from `postprocess`'s result.

    This is the predictions file of the official SQuAD evaluation script.

    Examples:

    >>> prediction_texts({"q1": {"text": "Denver Broncos", "score": 9.1}})
    {'q1': 'Denver Broncos'}
    """
    return {qid: value["text"] for qid, value in predictions.items()}
