#!/usr/bin/env python3
"""Load generator for `latentserve serve` (or any OpenAI-compatible server).

Sends streaming /v1/completions (or /v1/chat/completions) requests at a fixed concurrency or a
Poisson arrival rate, with prompts of a given length (random token ids, or random words as text),
and reports throughput (requests/s, output tokens/s), time to first token (TTFT), time per output
token after the first (TPOT), inter-token latency between streamed chunks (ITL) and end-to-end
latency at p50/p90/p99, plus errors.

With --metrics it also reads the server's /metrics before and after the run and relates the
engine's own time (forward pass, the rest of each step) to what clients saw; with --server-pid
(same machine) it adds the server process's CPU time, split into the busiest thread (the engine
loop) and all the others (HTTP, JSON, SSE), per streamed token.

Needs only aiohttp:
  python benchmarks/serve_load.py --url http://127.0.0.1:8000 --concurrency 1000 \
      --num-requests 1000 --input-len 32 --output-len 64 --metrics --server-pid PID
"""

import argparse
import asyncio
import json
import os
import random
import resource
import sys
import time
from dataclasses import dataclass, field

import aiohttp

WORDS = ("time person year way day thing man world life hand part child eye woman place work "
         "week case point government company number group problem fact").split()


@dataclass
class Result:
    ok: bool = False
    error: str = ""
    start: float = 0.0
    first_token: float = 0.0
    end: float = 0.0
    chunk_times: list = field(default_factory=list)  # arrival of each chunk carrying text
    output_tokens: int = 0
    prompt_tokens: int = 0


def make_prompt(args, rng):
    if args.prompt_kind == "ids":
        return [rng.randrange(args.min_token_id, args.vocab_size) for _ in range(args.input_len)]
    return " ".join(rng.choice(WORDS) for _ in range(args.input_len))


def make_body(args, prompt):
    body = {"model": args.model, "max_tokens": args.output_len, "stream": True,
            "stream_options": {"include_usage": True}, "temperature": args.temperature,
            "ignore_eos": args.ignore_eos}
    if args.endpoint == "chat":
        text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
        body["messages"] = [{"role": "user", "content": text}]
    else:
        body["prompt"] = prompt
    return body


async def one_request(session, args, prompt):
    r = Result(start=time.perf_counter())
    path = "/v1/chat/completions" if args.endpoint == "chat" else "/v1/completions"
    try:
        async with session.post(args.url + path, json=make_body(args, prompt)) as response:
            if response.status != 200:
                r.error = f"HTTP {response.status}: {(await response.text())[:200]}"
                return r
            done = False
            async for raw in response.content:
                line = raw.strip()
                if not line.startswith(b"data: "):
                    continue
                payload = line[6:]
                now = time.perf_counter()
                if payload == b"[DONE]":
                    done = True
                    break
                chunk = json.loads(payload)
                if "error" in chunk:
                    r.error = f"stream error: {chunk['error']}"
                    return r
                if chunk.get("usage"):
                    r.output_tokens = chunk["usage"]["completion_tokens"]
                    r.prompt_tokens = chunk["usage"]["prompt_tokens"]
                for choice in chunk.get("choices", []):
                    delta = choice.get("delta", {}).get("content") if args.endpoint == "chat" \
                        else choice.get("text")
                    if delta:
                        if not r.first_token:
                            r.first_token = now
                        r.chunk_times.append(now)
            r.end = time.perf_counter()
            if not done:
                r.error = "stream ended without [DONE]"
            elif not r.first_token:
                r.error = "no text in the stream"
            else:
                r.ok = True
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
        r.error = f"{type(e).__name__}: {e}"
    return r


async def fetch_text(session, url):
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.text()


def parse_metrics(text):
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def process_cpu(pid):
    """(process CPU seconds, busiest thread's CPU seconds) per thread, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            threads[tid] = (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return threads


async def run(args):
    rng = random.Random(args.seed)
    prompts = [make_prompt(args, rng) for _ in range(args.num_requests)]
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        if not args.model:
            models = json.loads(await fetch_text(session, args.url + "/v1/models"))
            args.model = models["data"][0]["id"]
        before = parse_metrics(await fetch_text(session, args.url + "/metrics")) \
            if args.metrics else None
        cpu_before = process_cpu(args.server_pid) if args.server_pid else None

        results = []
        started = time.perf_counter()
        if args.rate > 0:
            tasks = []
            for prompt in prompts:
                tasks.append(asyncio.create_task(one_request(session, args, prompt)))
                await asyncio.sleep(rng.expovariate(args.rate))
            results = await asyncio.gather(*tasks)
        else:
            queue = list(reversed(prompts))

            async def worker():
                while queue:
                    results.append(await one_request(session, args, queue.pop()))

            await asyncio.gather(*(worker() for _ in range(min(args.concurrency, len(prompts)))))
        elapsed = time.perf_counter() - started

        cpu_after = process_cpu(args.server_pid) if args.server_pid else None
        after = None
        if args.metrics:
            # The engine publishes its statistics at the end of each step.
            await asyncio.sleep(0.2)
            after = parse_metrics(await fetch_text(session, args.url + "/metrics"))
    return results, elapsed, before, after, cpu_before, cpu_after


def percentiles(values):
    if not values:
        return "n/a"
    values = sorted(values)

    def at(p):
        return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

    mean = sum(values) / len(values)
    return (f"mean {mean * 1e3:9.2f}  p50 {at(50) * 1e3:9.2f}  p90 {at(90) * 1e3:9.2f}  "
            f"p99 {at(99) * 1e3:9.2f}  (ms)")


def report(args, results, elapsed, before, after, cpu_before, cpu_after):
    ok = [r for r in results if r.ok]
    errors = [r for r in results if not r.ok]
    out_tokens = sum(r.output_tokens for r in ok)
    streamed_chunks = sum(len(r.chunk_times) for r in ok)
    print(f"requests: {len(results)} sent, {len(ok)} ok, {len(errors)} errors, "
          f"{elapsed:.2f} s wall")
    mode = f"rate {args.rate}/s" if args.rate > 0 else f"concurrency {args.concurrency}"
    print(f"workload: {args.endpoint}, {mode}, input {args.input_len} "
          f"{'token ids' if args.prompt_kind == 'ids' else 'words'}, output {args.output_len} "
          f"tokens, ignore_eos={args.ignore_eos}")
    print(f"throughput: {len(ok) / elapsed:.2f} requests/s, {out_tokens / elapsed:.1f} output "
          f"tokens/s, {streamed_chunks} text chunks for {out_tokens} tokens")
    ttft = [r.first_token - r.start for r in ok]
    e2e = [r.end - r.start for r in ok]
    tpot = [(r.end - r.first_token) / (r.output_tokens - 1) for r in ok if r.output_tokens > 1]
    itl = [b - a for r in ok for a, b in zip(r.chunk_times, r.chunk_times[1:])]
    print(f"TTFT : {percentiles(ttft)}")
    print(f"TPOT : {percentiles(tpot)}")
    print(f"ITL  : {percentiles(itl)}")
    print(f"E2E  : {percentiles(e2e)}")
    if errors:
        kinds = {}
        for r in errors:
            kinds[r.error] = kinds.get(r.error, 0) + 1
        for message, count in sorted(kinds.items(), key=lambda kv: -kv[1])[:5]:
            print(f"error x{count}: {message}")
    if before and after:
        report_engine(before, after, elapsed, out_tokens)
    if cpu_before and cpu_after:
        report_cpu(cpu_before, cpu_after, elapsed, out_tokens, streamed_chunks)
    return len(errors)


def report_engine(before, after, elapsed, out_tokens):
    def delta(name):
        return after.get("latentserve:" + name, 0) - before.get("latentserve:" + name, 0)

    steps = delta("engine_steps_total")
    forward = delta("engine_forward_seconds_total")
    overhead = delta("engine_overhead_seconds_total")
    generated = delta("engine_generated_tokens_total")
    print(f"engine: {steps:.0f} steps, {generated:.0f} tokens generated, forward {forward:.3f} s, "
          f"step overhead {overhead:.3f} s, busy {(forward + overhead) / elapsed * 100:.1f}% "
          f"of the wall time")
    if steps and generated:
        print(f"engine per step: forward {forward / steps * 1e3:.3f} ms, overhead "
              f"{overhead / steps * 1e3:.3f} ms, {generated / steps:.1f} tokens/step")
        print(f"engine per token: forward {forward / generated * 1e6:.1f} us, overhead "
              f"{overhead / generated * 1e6:.1f} us; wall per token seen by clients "
              f"{elapsed / max(out_tokens, 1) * 1e6:.1f} us")
    notifier = delta("engine_notifier_seconds_total")
    if generated:
        print(f"engine thread in output notifiers: {notifier:.3f} s, "
              f"{notifier / generated * 1e6:.2f} us per token")


def report_cpu(before, after, elapsed, out_tokens, chunks):
    deltas = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    total = sum(deltas.values())
    busiest = max(deltas.values()) if deltas else 0.0
    others = total - busiest
    print(f"server CPU: {total:.2f} s in {len(deltas)} threads ({total / elapsed * 100:.0f}% of "
          f"one core); busiest thread (engine loop) {busiest:.2f} s, all others {others:.2f} s")
    if out_tokens:
        print(f"server CPU per streamed token: other threads {others / out_tokens * 1e6:.1f} us "
              f"({others / max(chunks, 1) * 1e6:.1f} us per SSE event), engine thread "
              f"{busiest / out_tokens * 1e6:.1f} us")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--model", default="", help="default: the first of /v1/models")
    p.add_argument("--endpoint", choices=("completions", "chat"), default="completions")
    p.add_argument("--num-requests", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=16, help="clients at once (without --rate)")
    p.add_argument("--rate", type=float, default=0.0, help="Poisson arrivals per second")
    p.add_argument("--input-len", type=int, default=32, help="prompt tokens (or words for text)")
    p.add_argument("--output-len", type=int, default=64)
    p.add_argument("--prompt-kind", choices=("ids", "text"), default="ids")
    p.add_argument("--vocab-size", type=int, default=129280)
    p.add_argument("--min-token-id", type=int, default=1000, help="skips special tokens")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--ignore-eos", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument("--metrics", action="store_true", help="compare with the server's /metrics")
    p.add_argument("--server-pid", type=int, default=0, help="server process, for CPU time")
    args = p.parse_args()
    args.ignore_eos = bool(args.ignore_eos)
    args.url = args.url.rstrip("/")

    # One socket per client: raise the open-file limit as far as allowed.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.concurrency + 64 > hard:
        print(f"warning: open-file limit {hard} is below the concurrency", file=sys.stderr)

    results, *rest = asyncio.run(run(args))
    errors = report(args, results, *rest)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
