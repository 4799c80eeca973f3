"""Python reference for the browser test: probabilities of an export's .tflite model
run with `ai_edge_litert` on texts tokenized by kbert's tokenizer.

    python mobile_demo/web/test/reference.py exports/sst2 --mode float32 --out ref.json \
        "a gorgeous , witty , seductive movie ." "bad ."

Writes {"export", "mode", "seq_len", "texts", "ids", "logits", "probs"}; the browser test
(KBERT_DEMO_REFERENCE=ref.json) types the same texts and compares.
"""

import argparse
import json
import os

import numpy as np

SENTENCES = [
    "a gorgeous , witty , seductive movie .",
    "It's slow -- very, very slow.",
    "Héllo wörld: a naïve, charming résumé of a film!",
    "the plot was dull and the acting awful",
    "",
]


def reference(export_dir, texts, mode="float32"):
    from ai_edge_litert.interpreter import Interpreter

    from kbert.tokenization import BertTokenizer

    with open(os.path.join(export_dir, "model_card.json"), encoding="utf-8") as f:
        card = json.load(f)
    path = os.path.join(export_dir, "tflite", f"model_{mode}.tflite")
    interpreter = Interpreter(model_path=path)
    runner = interpreter.get_signature_runner("serving_default")
    seq_len = int(runner.get_input_details()["ids"]["shape"][-1])
    tokenizer = BertTokenizer(os.path.join(export_dir, "vocab.txt"), lowercase=card.get("lowercase", True))
    packed = {k: v.numpy() for k, v in tokenizer(list(texts), seq_len=seq_len).items()}
    ids, logits, probs = [], [], []
    for i in range(len(texts)):
        out = runner(ids=packed["token_ids"][i:i + 1], mask=packed["padding_mask"][i:i + 1],
                     segment_ids=packed["segment_ids"][i:i + 1])
        if "probabilities" in out:  # a classifier's .tflite (older exports: logits)
            row, p = None, np.asarray(out["probabilities"], np.float64)[0]
        else:
            row = np.asarray(out["logits"] if "logits" in out else next(iter(out.values())), np.float64)[0]
            p = np.exp(row - row.max())
        ids.append(packed["token_ids"][i].tolist())
        logits.append(None if row is None else row.tolist())
        probs.append((p / p.sum()).tolist())
    return {"export": os.path.abspath(export_dir), "mode": mode, "seq_len": seq_len, "texts": list(texts),
            "ids": ids, "logits": logits, "probs": probs}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export_dir")
    parser.add_argument("texts", nargs="*", help=f"Texts (default: {len(SENTENCES)} built-in sentences).")
    parser.add_argument("--mode", default="float32")
    parser.add_argument("--out", required=True)
    args = parser.parse_intermixed_args()
    result = reference(args.export_dir, args.texts or SENTENCES, args.mode)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
    print(f"{len(result['texts'])} texts -> {args.out}")


if __name__ == "__main__":
    main()
