"""Run an exported SavedModel the way TF Serving would: a fresh process that
imports only tensorflow and tensorflow_text (no kbert).

    python check_savedmodel.py SAVED_MODEL INPUTS.npz TEXTS.json OUT.npz [LATENCY_RUNS [SIGNATURES.json]]

Writes the `ids` signature's outputs on INPUTS, the `serving_default`
outputs on the raw TEXTS (prefixed `text.`), and the median batch-1 latency
of `serving_default` in milliseconds (`latency_ms`, 2 threads). SIGNATURES
maps other signatures to their inputs (`{"similarity": {"text": [...],
"text_pair": [...]}}`); their outputs are prefixed with the name and a dot.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text  # noqa: E402,F401  (registers the tokenizer ops)


def main(path, inputs_path, texts_path, out_path, runs=50, signatures_path=None):
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    loaded = tf.saved_model.load(path)
    with np.load(inputs_path) as z:
        inputs = {k: z[k] for k in z.files}
    with open(texts_path, encoding="utf-8") as f:
        texts = json.load(f)
    ids = loaded.signatures["ids"]
    results = {}
    for start in range(0, len(inputs["token_ids"]), 64):
        out = ids(**{k: tf.constant(v[start:start + 64]) for k, v in inputs.items()})
        for k, v in out.items():
            results.setdefault(k, []).append(v.numpy())
    serve = loaded.signatures["serving_default"]
    feed = {k: np.array(v, dtype=object) for k, v in texts.items()}
    for start in range(0, len(feed["text"]), 64):
        out = serve(**{k: tf.constant(v[start:start + 64]) for k, v in feed.items()})
        for k, v in out.items():
            results.setdefault("text." + k, []).append(v.numpy())
    if signatures_path:
        with open(signatures_path, encoding="utf-8") as f:
            for name, values in json.load(f).items():
                out = loaded.signatures[name](**{k: tf.constant(np.array(v, dtype=object)) for k, v in values.items()})
                for k, v in out.items():
                    results.setdefault(f"{name}.{k}", []).append(v.numpy())
    times = []
    one = {k: tf.constant(v[:1]) for k, v in feed.items()}
    serve(**one)
    for _ in range(int(runs)):
        begin = time.perf_counter()
        serve(**one)
        times.append(time.perf_counter() - begin)
    arrays = {k: np.concatenate(v) for k, v in results.items()}
    arrays = {k: _decode(v) if v.dtype == object else v for k, v in arrays.items()}
    np.savez(out_path, latency_ms=np.float64(np.median(times) * 1000), **arrays)
    assert "kbert" not in sys.modules


def _decode(strings):
    return np.array([s.decode("utf-8", "replace") for s in strings.ravel()]).reshape(strings.shape)


if __name__ == "__main__":
    main(*sys.argv[1:])
