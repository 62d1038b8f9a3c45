#!/usr/bin/env python3
"""Compares latentserve's tokenizer with Hugging Face `tokenizers`, both single-threaded.

Builds about 1 MB of mixed text deterministically (English prose and special-token text from the
fixture cases and this repository's docs, source code from this repository, synthetic Chinese),
encodes it with both (each line as its own text, and the whole text as one), checks that the ids
are identical, and prints both throughputs and their ratio.

Usage: RAYON_NUM_THREADS=1 python benchmarks/tokenizer_vs_hf.py BENCH_BINARY [TOKENIZER_DIR]
Needs the `tokenizers` package (a benchmark-only dependency, not needed to build or test).
"""
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("RAYON_RS_NUM_CPUS", "1")
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from tokenizers import Tokenizer  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
TARGET_BYTES = 1_000_000
REPEATS = 5

CHINESE_WORDS = ["我们", "今天", "天气", "非常", "好", "学习", "模型", "推理", "服务器", "数据", "计算",
                 "语言", "中文", "文本", "分词", "速度", "测试", "结果", "问题", "方法", "系统", "用户",
                 "时间", "世界", "中国", "北京", "上海", "发展", "技术", "研究", "人工智能", "深度", "网络"]
CHINESE_PUNCT = ["，", "。", "、", "；", "！", "？"]


def chinese_sentences(rng, n):
    out = []
    for _ in range(n):
        words = [rng.choice(CHINESE_WORDS) for _ in range(rng.randint(6, 20))]
        if rng.random() < 0.3:
            words.insert(rng.randint(0, len(words)), str(rng.randint(1, 2025)))
        out.append("".join(w + (rng.choice(CHINESE_PUNCT) if rng.random() < 0.15 else "") for w in words) + "。")
    return out


def build_corpus(tokenizer_dir):
    rng = random.Random(20240601)
    fixtures = REPO.parent / "shared" / "fixtures" / "deepseek-v3-tokenizer"
    prose, code = [], []
    for name in ("encode_cases.jsonl", "chat_cases.jsonl"):
        path = fixtures / name
        if path.exists():
            prose += [json.loads(l)["text"] for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
    for pattern in ("*.md",):
        for p in sorted(REPO.rglob(pattern)):
            if "build" not in p.parts[len(REPO.parts)] and ".git" not in p.parts:
                prose.append(p.read_text(encoding="utf-8", errors="replace"))
    for pattern in ("*.cpp", "*.h", "*.py", "*.cu", "CMakeLists.txt"):
        for p in sorted(REPO.rglob(pattern)):
            rel = p.relative_to(REPO)
            if not rel.parts[0].startswith("build") and ".git" not in rel.parts:
                code.append(p.read_text(encoding="utf-8", errors="replace"))
    chinese = chinese_sentences(rng, 4000)
    parts, size = [], 0
    # Interleave prose, code and Chinese in fixed proportions until the target size.
    sources = [("prose", prose), ("code", code), ("zh", chinese)]
    weights = [0.4, 0.4, 0.2]
    while size < TARGET_BYTES:
        kind, pool = rng.choices(sources, weights)[0]
        if not pool:
            continue
        piece = rng.choice(pool)
        if kind == "zh":
            piece = "".join(rng.choice(pool) for _ in range(rng.randint(1, 6)))
        parts.append(piece)
        size += len(piece.encode("utf-8"))
    return "\n".join(parts)


def hf_encode(tok, texts):
    best, ids = float("inf"), None
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        c0 = time.process_time()
        if len(texts) == 1:
            out = [tok.encode(texts[0], add_special_tokens=False).ids]
        else:
            out = [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        if wall < best:
            best, ids, best_cpu = wall, out, cpu
    return best, best_cpu, ids


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    binary = sys.argv[1]
    tokenizer_dir = sys.argv[2] if len(sys.argv) > 2 else str(REPO / "assets" / "tokenizer" / "deepseek-v3")
    text = build_corpus(tokenizer_dir)
    nbytes = len(text.encode("utf-8"))
    hf = Tokenizer.from_file(os.path.join(tokenizer_dir, "tokenizer.json"))
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        print(f"corpus: {nbytes / 1e6:.3f} MB, {text.count(chr(10)) + 1} lines")
        for mode, texts in (("per line", text.split("\n")), ("whole text", [text])):
            hf_s, hf_cpu, hf_ids = hf_encode(hf, texts)
            ids_path = os.path.join(tmp, "ids.txt")
            args = [binary, tokenizer_dir, corpus, str(REPEATS), "--ids", ids_path]
            if mode == "per line":
                args.append("--lines")
            out = subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()
            ours_s = float(out.split("best of")[1].split(":")[1].split("s,")[0])
            with open(ids_path) as f:
                ours_ids = [[int(x) for x in line.split()] for line in f.read().split("\n")[: len(texts)]]
            same = ours_ids == hf_ids
            ok = ok and same
            tokens = sum(len(x) for x in hf_ids)
            print(f"[{mode}] {len(texts)} texts, {tokens} tokens, ids identical: {same}")
            print(f"  HF tokenizers : {nbytes / 1e6 / hf_s:7.2f} MB/s  ({hf_s:.4f} s wall, {hf_cpu:.4f} s CPU)")
            print(f"  latentserve   : {nbytes / 1e6 / ours_s:7.2f} MB/s  ({ours_s:.4f} s)")
            print(f"  ratio latentserve / HF: {hf_s / ours_s:.2f}")
            if not same:
                for i, (a, b) in enumerate(zip(ours_ids, hf_ids)):
                    if a != b:
                        print(f"  first difference in text {i}: {texts[i][:120]!r}")
                        break
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
