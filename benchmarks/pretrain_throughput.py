"""Pre-training throughput of kbert's BertPretrainer (MLM + NSP), in sequences/s and MFU.

Runs the real model and optimizer (AdamW, weight-decay exclusions, warm-up
schedule, clipping) on synthetic token ids of a fixed shape, so it measures the
model step, not the input pipeline. Backend-agnostic Keras 3: it runs on
TensorFlow (`KERAS_BACKEND=tensorflow`, the default) and, where TensorFlow cannot be
installed, on JAX with the same kbert layers (both compile with XLA).

Model FLOPs per sequence follow the usual accounting (Kaplan et al.; Megatron):
forward = 2 * (matmul parameters) * tokens + attention scores/context
(4 * seq_len * hidden per token per layer) + the MLM head at the masked
positions; training = 3 * forward. Embedding lookups count nothing.

Examples:
    python benchmarks/pretrain_throughput.py --preset base --precision fp32
    KERAS_BACKEND=jax python benchmarks/pretrain_throughput.py --preset base \\
        --precision mixed_bfloat16 --xla --batch-size 256
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def train_flops_per_sequence(config, seq_len, num_predictions):
    h, i, layers, v = config.hidden_size, config.intermediate_size, config.num_layers, config.vocab_size
    per_token_layer = 2 * (4 * h * h + 2 * h * i) + 4 * seq_len * h
    encoder = seq_len * layers * per_token_layer
    pooler_nsp = 2 * (h * h + 2 * h)
    mlm = num_predictions * 2 * (h * h + h * v)
    return 3 * (encoder + pooler_nsp + mlm)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="base")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-predictions", type=int, default=20)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "mixed_float16", "mixed_bfloat16"])
    parser.add_argument("--xla", action="store_true")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--steps-per-execution", type=int, default=1)
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="Accelerator peak for MFU (H100 SXM dense: 989 bf16/fp16, 494 TF32).")
    parser.add_argument("--dropout", type=float, default=None,
                        help="Override hidden and attention dropout (BERT: 0.1) to see what dropout costs.")
    parser.add_argument("--json", default=None, help="Append the result as a JSON line here.")
    args = parser.parse_args()

    import keras

    from kbert.config import BertConfig
    from kbert.models import BertEncoder, BertPretrainer
    from kbert.training import make_optimizer, set_precision

    set_precision(args.precision)
    keras.utils.set_random_seed(0)
    overrides = {} if args.dropout is None else {"hidden_dropout": args.dropout, "attention_dropout": args.dropout}
    config = BertConfig.preset(args.preset, **overrides)
    model = BertPretrainer(BertEncoder(config))
    total = args.warmup_steps + args.steps
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
    model.compile(
        optimizer=make_optimizer(1e-4, total_steps=10 * total, warmup_steps=total),
        loss={"mlm": loss, "nsp": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
        jit_compile=args.xla,
        steps_per_execution=args.steps_per_execution,
    )

    rng = np.random.default_rng(0)
    b, t, p = args.batch_size, args.seq_len, args.max_predictions
    x = {
        "token_ids": rng.integers(5, config.vocab_size, (b, t)).astype("int32"),
        "segment_ids": (np.arange(t)[None, :] >= t // 2).repeat(b, 0).astype("int32"),
        "padding_mask": np.ones((b, t), "int32"),
        "mask_positions": np.sort(rng.choice(np.arange(1, t), (b, p)), axis=1).astype("int32"),
    }
    y = {"mlm": rng.integers(5, config.vocab_size, (b, p)).astype("int32"), "nsp": rng.integers(0, 2, b).astype("int32")}
    w = {"mlm": np.ones((b, p), "float32"), "nsp": np.ones(b, "float32")}

    def run(steps):
        # Repeat one batch `steps` times; fit() keeps the step compiled and the
        # host-to-device copy of a 64x128 int batch is negligible next to the step.
        n = steps * args.steps_per_execution
        reps = {k: np.repeat(v, n, axis=0) for k, v in x.items()}
        ys = {k: np.repeat(v, n, axis=0) for k, v in y.items()}
        ws = {k: np.repeat(v, n, axis=0) for k, v in w.items()}
        start = time.perf_counter()
        history = model.fit(reps, ys, sample_weight=ws, batch_size=b, epochs=1, verbose=0, shuffle=False)
        return time.perf_counter() - start, history.history["loss"][-1]

    run(args.warmup_steps)  # compile + warm-up
    seconds, last_loss = run(args.steps)
    steps = args.steps * args.steps_per_execution
    seq_per_s = steps * b / seconds
    flops = train_flops_per_sequence(config, t, p)
    achieved = seq_per_s * flops / 1e12
    result = {
        "backend": keras.backend.backend(),
        "preset": args.preset,
        "params": model.count_params(),
        "precision": args.precision,
        "xla": args.xla,
        "dropout": config.hidden_dropout,
        "batch_size": b,
        "seq_len": t,
        "steps": steps,
        "seconds": round(seconds, 3),
        "sequences_per_s": round(seq_per_s, 1),
        "model_tflops_per_s": round(achieved, 1),
        "gflop_per_sequence": round(flops / 1e9, 2),
        "loss": float(last_loss),
    }
    if args.peak_tflops:
        result["mfu"] = round(achieved / args.peak_tflops, 4)
        result["peak_tflops"] = args.peak_tflops
    print(json.dumps(result))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
