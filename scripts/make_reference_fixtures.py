#!/usr/bin/env python3
"""Make the tests/fixtures/ref-* checkpoints and their golden outputs.

Each fixture is a small random-weight checkpoint in the Hugging Face DeepSeek
layout (config.json with the real key set, safetensors, optional shards and
FP8 block scales). Goldens come from Hugging Face transformers' own
DeepseekV3ForCausalLM / DeepseekV2ForCausalLM, run in float32 with eager
attention on the weights read back from the written files. See
tests/fixtures/README.md for what each fixture covers and the checks made.

Usage (from the repository root):
  build/venv-ref/bin/python scripts/make_reference_fixtures.py            # all fixtures
  build/venv-ref/bin/python scripts/make_reference_fixtures.py --anchor   # HF vs tiny-dsv3 only
"""
import argparse
import copy
import hashlib
import json
import math
import os
import sys

import numpy as np
import safetensors
import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import AutoConfig
from transformers.cache_utils import DynamicCache

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.environ.get("LATENTSERVE_SHARED_FIXTURES",
                      os.path.join(os.path.dirname(REPO), "shared", "fixtures"))
TINY = os.path.join(TINY, "tiny-dsv3")
OUT = os.path.join(REPO, "tests", "fixtures")

PROMPT_LENGTHS = [1, 5, 19, 40]
ALL_POSITIONS_PROMPT = 2
DECODE_FULL_PROMPT = 1
N_NEW = 8
MIN_GREEDY_MARGIN = 0.05
MIN_ROUTING_MARGIN = 1e-3
MIN_DISTINCT_NEW = 4
MAX_TRIALS = 400
FP8_BLOCK = 128
FP8_MAX = 448.0

# --------------------------------------------------------------------------- fixtures

YARN_V3 = {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
           "original_max_position_embeddings": 4096, "type": "yarn"}
YARN_V2_LITE = {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707,
                "original_max_position_embeddings": 4096, "type": "yarn"}

FIXTURES = {
    "ref-yarn-noqlora": dict(
        seed=20250201, prompt_seed=11, shards=1, fp8=False,
        config=dict(hidden_size=96, vocab_size=256, num_hidden_layers=3, first_k_dense_replace=1,
                    intermediate_size=160, moe_intermediate_size=24, num_attention_heads=4,
                    num_key_value_heads=4, q_lora_rank=None, kv_lora_rank=48, qk_nope_head_dim=24,
                    qk_rope_head_dim=16, v_head_dim=24, n_routed_experts=12, num_experts_per_tok=4,
                    n_group=4, topk_group=2, n_shared_experts=1, routed_scaling_factor=2.5,
                    rope_scaling=YARN_V3, max_position_embeddings=163840, num_nextn_predict_layers=0,
                    tie_word_embeddings=False)),
    "ref-fp8": dict(
        seed=20250202, prompt_seed=12, shards=3, fp8=True,
        config=dict(hidden_size=192, vocab_size=256, num_hidden_layers=2, first_k_dense_replace=1,
                    intermediate_size=320, moe_intermediate_size=32, num_attention_heads=4,
                    num_key_value_heads=4, q_lora_rank=160, kv_lora_rank=96, qk_nope_head_dim=32,
                    qk_rope_head_dim=16, v_head_dim=48, n_routed_experts=8, num_experts_per_tok=2,
                    n_group=2, topk_group=1, n_shared_experts=2, routed_scaling_factor=2.5,
                    num_nextn_predict_layers=1,
                    quantization_config={"activation_scheme": "dynamic", "fmt": "e4m3",
                                         "quant_method": "fp8", "weight_block_size": [128, 128]})),
    "ref-v2": dict(
        seed=20250203, prompt_seed=13, shards=1, fp8=False,
        config=dict(architectures=["DeepseekV2ForCausalLM"], model_type="deepseek_v2",
                    hidden_size=96, vocab_size=256, num_hidden_layers=3, first_k_dense_replace=1,
                    intermediate_size=160, moe_intermediate_size=24, num_attention_heads=4,
                    num_key_value_heads=4, q_lora_rank=None, kv_lora_rank=48, qk_nope_head_dim=24,
                    qk_rope_head_dim=16, v_head_dim=24, n_routed_experts=12, num_experts_per_tok=3,
                    n_group=4, topk_group=2, n_shared_experts=2, routed_scaling_factor=3.0,
                    scoring_func="softmax", topk_method="group_limited_greedy", norm_topk_prob=False,
                    rope_scaling=YARN_V2_LITE, max_position_embeddings=163840,
                    drop_keys=["num_nextn_predict_layers"])),
}


def make_config(spec):
    """The tiny-dsv3 config.json (the real DeepSeek-V3 key set) with new values."""
    with open(os.path.join(TINY, "config.json")) as f:
        cfg = json.load(f)
    over = copy.deepcopy(spec["config"])
    for k in over.pop("drop_keys", []):
        cfg.pop(k)
    extra = set(over) - set(cfg) - {"quantization_config"}
    assert not extra, f"keys not in the DeepSeek-V3 config: {extra}"
    cfg.update(over)
    return dict(sorted(cfg.items()))


# --------------------------------------------------------------------------- weights

def layer_names(cfg, n, mtp):
    """(name, shape, kind) for one layer; kind picks the init and the storage."""
    h, p = cfg["hidden_size"], f"model.layers.{n}."
    heads, qk = cfg["num_attention_heads"], cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]
    kv, rope, v = cfg["kv_lora_rank"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    out = [(p + "input_layernorm.weight", [h], "norm"), (p + "post_attention_layernorm.weight", [h], "norm")]
    a = p + "self_attn."
    if cfg["q_lora_rank"] is None:
        out.append((a + "q_proj.weight", [heads * qk, h], "linear"))
    else:
        r = cfg["q_lora_rank"]
        out += [(a + "q_a_proj.weight", [r, h], "linear"), (a + "q_a_layernorm.weight", [r], "norm"),
                (a + "q_b_proj.weight", [heads * qk, r], "linear")]
    out += [(a + "kv_a_proj_with_mqa.weight", [kv + rope, h], "linear"),
            (a + "kv_a_layernorm.weight", [kv], "norm"),
            (a + "kv_b_proj.weight", [heads * (cfg["qk_nope_head_dim"] + v), kv], "linear"),
            (a + "o_proj.weight", [h, heads * v], "linear")]
    m = p + "mlp."

    def ffn(prefix, inter):
        return [(prefix + "gate_proj.weight", [inter, h], "linear"), (prefix + "up_proj.weight", [inter, h], "linear"),
                (prefix + "down_proj.weight", [h, inter], "linear")]
    if n < cfg["first_k_dense_replace"]:
        out += ffn(m, cfg["intermediate_size"])
    else:
        e, mi = cfg["n_routed_experts"], cfg["moe_intermediate_size"]
        out.append((m + "gate.weight", [e, h], "router"))
        if cfg["model_type"] == "deepseek_v3":
            out.append((m + "gate.e_score_correction_bias", [e], "bias"))
        for j in range(e):
            out += ffn(f"{m}experts.{j}.", mi)
        out += ffn(m + "shared_experts.", mi * cfg["n_shared_experts"])
    if mtp:
        out += [(p + "enorm.weight", [h], "norm"), (p + "hnorm.weight", [h], "norm"),
                (p + "eh_proj.weight", [h, 2 * h], "linear_bf16"),
                (p + "shared_head.norm.weight", [h], "norm"),
                (p + "shared_head.head.weight", [cfg["vocab_size"], h], "copy:lm_head.weight"),
                (p + "embed_tokens.weight", [cfg["vocab_size"], h], "copy:model.embed_tokens.weight")]
    return out


def tensor_list(cfg):
    out = [("model.embed_tokens.weight", [cfg["vocab_size"], cfg["hidden_size"]], "embed")]
    n_layers = cfg["num_hidden_layers"]
    for n in range(n_layers + cfg.get("num_nextn_predict_layers", 0)):
        out += layer_names(cfg, n, n >= n_layers)
    out += [("model.norm.weight", [cfg["hidden_size"]], "norm"),
            ("lm_head.weight", [cfg["vocab_size"], cfg["hidden_size"]], "head")]
    return out


def draw_weights(cfg, seed):
    """float32 master weights, drawn as the tiny-dsv3 README describes."""
    rng = np.random.default_rng(seed)
    w = {}
    for name, shape, kind in tensor_list(cfg):
        if kind.startswith("copy:"):
            continue
        if kind in ("linear", "linear_bf16", "router", "head"):
            std = (1.0 / math.sqrt(shape[1])) * (2.0 if kind in ("router", "head") else 1.0)
            x = rng.normal(0.0, std, shape)
        elif kind == "norm":
            x = 1.0 + rng.normal(0.0, 0.1, shape)
        elif kind == "embed":
            x = rng.normal(0.0, 1.0, shape)
        elif kind == "bias":
            x = rng.normal(0.0, 0.08, shape)
        w[name] = torch.from_numpy(x.astype(np.float32))
    for name, shape, kind in tensor_list(cfg):
        if kind.startswith("copy:"):
            w[name] = w[kind[5:]].clone()
    return w


def quantize_fp8(w):
    """128x128 block FP8 (e4m3) as DeepSeek stores it: q = w / s, s = amax / 448 per block."""
    rows, cols = w.shape
    br, bc = -(-rows // FP8_BLOCK), -(-cols // FP8_BLOCK)
    scale = torch.zeros(br, bc, dtype=torch.float32)
    q = torch.zeros(rows, cols, dtype=torch.float8_e4m3fn)
    for i in range(br):
        for j in range(bc):
            blk = w[i * FP8_BLOCK:(i + 1) * FP8_BLOCK, j * FP8_BLOCK:(j + 1) * FP8_BLOCK]
            s = blk.abs().max() / FP8_MAX
            scale[i, j] = s
            q[i * FP8_BLOCK:(i + 1) * FP8_BLOCK, j * FP8_BLOCK:(j + 1) * FP8_BLOCK] = \
                (blk / s).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q, scale


def dequantize_fp8(q, scale):
    s = scale.repeat_interleave(FP8_BLOCK, 0).repeat_interleave(FP8_BLOCK, 1)
    return q.to(torch.float32) * s[:q.shape[0], :q.shape[1]]


def storage_tensors(cfg, master, fp8):
    kinds = {n: k for n, _, k in tensor_list(cfg)}
    out = {}
    for name, x in master.items():
        if kinds[name] == "bias":
            out[name] = x.clone()
        elif fp8 and kinds[name] == "linear":
            out[name], out[name + "_scale_inv"] = quantize_fp8(x)
        else:
            out[name] = x.to(torch.bfloat16)
    return out


def shard_plan(tensors, cfg, shards):
    """Size-cut shards over the main model, the MTP layer alone in the last one (as in DeepSeek-V3)."""
    mtp_prefix = f"model.layers.{cfg['num_hidden_layers']}."
    main = [n for n in tensors if not n.startswith(mtp_prefix)]
    mtp = [n for n in tensors if n.startswith(mtp_prefix)]
    groups = [main] if not mtp else [main, mtp]
    n_main = shards - (1 if mtp else 0)
    if n_main > 1:
        total = sum(tensors[n].nbytes for n in main)
        cut, acc, cur, parts = total / n_main, 0, [], []
        for n in main:
            cur.append(n)
            acc += tensors[n].nbytes
            if acc >= cut * (len(parts) + 1) and len(parts) < n_main - 1:
                parts.append(cur)
                cur = []
        parts.append(cur)
        groups = parts + ([mtp] if mtp else [])
    return groups


def write_checkpoint(d, cfg, tensors, shards):
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.endswith(".safetensors") or f.endswith(".json"):
            os.remove(os.path.join(d, f))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    meta = {"format": "pt"}
    if shards == 1:
        save_file(tensors, os.path.join(d, "model.safetensors"), metadata=meta)
        os.chmod(os.path.join(d, "model.safetensors"), 0o644)
        return
    groups = shard_plan(tensors, cfg, shards)
    weight_map = {}
    for i, names in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        save_file({n: tensors[n] for n in names}, os.path.join(d, fname), metadata=meta)
        weight_map.update({n: fname for n in names})
    index = {"metadata": {"total_size": sum(t.nbytes for t in tensors.values())},
             "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)


def read_checkpoint(d):
    """All tensors as float32 by HF name, FP8 weights dequantized with their block scales."""
    idx = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) \
        else ["model.safetensors"]
    raw = {}
    for f in files:
        raw.update(load_file(os.path.join(d, f)))
    out = {}
    for name, t in raw.items():
        if name.endswith("_scale_inv"):
            continue
        if t.dtype == torch.float8_e4m3fn:
            out[name] = dequantize_fp8(t, raw[name + "_scale_inv"])
        else:
            out[name] = t.to(torch.float32)
    return out, raw


# --------------------------------------------------------------------------- HF model

def hf_model(d, weights):
    """The HF model class for d/config.json, float32, eager, with the checkpoint's weights."""
    cfg = AutoConfig.from_pretrained(d)
    cfg._attn_implementation = "eager"
    cfg._experts_implementation = "eager"
    cls = transformers.DeepseekV3ForCausalLM if cfg.model_type == "deepseek_v3" \
        else transformers.DeepseekV2ForCausalLM
    torch.manual_seed(0)
    model = cls(cfg).to(torch.float32).eval()
    sd = {}
    n_layers, experts = cfg.num_hidden_layers, cfg.n_routed_experts
    for name, t in weights.items():
        parts = name.split(".")
        if name.startswith("model.layers.") and int(parts[2]) >= n_layers:
            continue  # MTP layer: not part of the HF model
        if ".mlp.experts." in name:
            continue
        sd[name] = t
    for n in range(cfg.first_k_dense_replace, n_layers):
        p = f"model.layers.{n}.mlp.experts."
        sd[p + "gate_up_proj"] = torch.stack([torch.cat([weights[f"{p}{e}.gate_proj.weight"],
                                                         weights[f"{p}{e}.up_proj.weight"]]) for e in range(experts)])
        sd[p + "down_proj"] = torch.stack([weights[f"{p}{e}.down_proj.weight"] for e in range(experts)])
    model.load_state_dict(sd, strict=True)
    return model


class RouterProbe:
    """Records router logits of every MoE layer (forward hooks on the HF gate modules)."""

    def __init__(self, model):
        self.logits, self.choice = {}, {}
        self.hooks = []
        for i, layer in enumerate(model.model.layers):
            gate = getattr(layer.mlp, "gate", None)
            if gate is not None and hasattr(gate, "routed_scaling_factor"):
                self.hooks.append(gate.register_forward_hook(self._hook(i)))

    def _hook(self, i):
        def f(_mod, _inp, out):
            self.logits.setdefault(i, []).append(out[0].detach().clone())
            self.choice.setdefault(i, []).append((out[2].detach().clone(), out[1].detach().clone()))
        return f

    def reset(self):
        self.logits, self.choice = {}, {}


def routing_margins(model, logits_by_layer):
    """Smallest gap between last chosen and first rejected score (groups and experts)."""
    c = model.config
    k, g, tg = c.num_experts_per_tok, c.n_group, c.topk_group
    worst_e, worst_g = math.inf, math.inf
    for i, chunks in logits_by_layer.items():
        lg = torch.cat(chunks).double()
        ne = lg.shape[-1]
        if c.model_type == "deepseek_v3":
            bias = model.model.layers[i].mlp.gate.e_score_correction_bias.double()
            s = lg.sigmoid() + bias
            gs = s.view(-1, g, ne // g).topk(2, dim=-1)[0].sum(-1)
        else:  # softmax is monotone: compare router logits, where engine noise is uniform
            s = lg
            gs = s.view(-1, g, ne // g).max(-1).values if c.topk_method == "group_limited_greedy" else None
        if gs is not None and tg < g:
            sg = gs.sort(-1, descending=True).values
            worst_g = min(worst_g, (sg[:, tg - 1] - sg[:, tg]).min().item())
            keep = torch.zeros_like(gs).scatter_(1, gs.topk(tg, -1)[1], 1).bool()
            s = s.masked_fill(~keep.repeat_interleave(ne // g, 1), -math.inf)
        se = s.sort(-1, descending=True).values
        worst_e = min(worst_e, (se[:, k - 1] - se[:, k]).min().item())
    return worst_e, worst_g


# --------------------------------------------------------------------------- goldens

def f9(x):
    if isinstance(x, torch.Tensor):
        return f9(x.tolist())
    if isinstance(x, list):
        return [f9(v) for v in x]
    return float(f"{float(x):.9g}")


def top5(logits):
    v, i = logits.topk(5)
    return {"ids": i.tolist(), "values": f9(v)}


@torch.no_grad()
def greedy_run(model, prompt):
    """Prefill + single-token decode with HF's cache; logits of every step."""
    cache = DynamicCache(config=model.config)
    out = model(input_ids=torch.tensor([prompt]), cache=cache, use_cache=True)
    steps, toks = [out.logits[0, -1].clone()], []
    for _ in range(N_NEW - 1):
        toks.append(int(steps[-1].argmax()))
        out = model(input_ids=torch.tensor([[toks[-1]]]), cache=cache, use_cache=True)
        steps.append(out.logits[0, -1].clone())
    toks.append(int(steps[-1].argmax()))
    return toks, torch.stack(steps)


@torch.no_grad()
def full_logits(model, ids):
    return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]


def draw_prompt(model, probe, vocab, n, seed):
    """Redraw until greedy margins, routing margins and token variety are comfortable."""
    for trial in range(MAX_TRIALS):
        rng = np.random.default_rng([seed, n, trial])
        prompt = rng.integers(0, vocab, n).tolist()
        toks, steps = greedy_run(model, prompt)
        top2 = steps.topk(2, dim=-1).values
        margin = (top2[:, 0] - top2[:, 1]).min().item()
        if margin < MIN_GREEDY_MARGIN or len(set(toks)) < MIN_DISTINCT_NEW:
            continue
        probe.reset()
        full = full_logits(model, prompt + toks[:-1])
        re, rg = routing_margins(model, probe.logits)
        probe.reset()
        if min(re, rg) < MIN_ROUTING_MARGIN:
            continue
        return dict(prompt=prompt, trial=trial, toks=toks, steps=steps, full=full, margin=margin,
                    routing_margin_experts=re, routing_margin_groups=rg)
    raise RuntimeError(f"no acceptable prompt of length {n} in {MAX_TRIALS} trials")


def derived(model):
    c = model.config
    att = model.model.layers[0].self_attn
    rot = model.model.rotary_emb
    out = {"softmax_scale": f9(att.scaling), "rope_inv_freq": f9(rot.inv_freq),
           "rope_cos_sin_scale": f9(rot.attention_scaling), "rope_parameters": dict(c.rope_parameters),
           "rope_interleave": bool(getattr(c, "rope_interleave", True))}
    rp = c.rope_parameters
    if rp.get("rope_type") == "yarn":
        d, base, orig = c.qk_rope_head_dim, rp["rope_theta"], rp["original_max_position_embeddings"]
        dim_of = lambda rot_: d * math.log(orig / (rot_ * 2 * math.pi)) / (2 * math.log(base))
        low = max(math.floor(dim_of(rp["beta_fast"])), 0)
        high = min(math.ceil(dim_of(rp["beta_slow"])), d - 1)
        ramp = [min(max((i - low) / (high - low), 0.0), 1.0) for i in range(d // 2)]
        m = 0.1 * rp["mscale_all_dim"] * math.log(rp["factor"]) + 1.0
        base_freq = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
        r = torch.tensor(ramp, dtype=torch.float32)
        official = base_freq / rp["factor"] * r + base_freq * (1 - r)  # official precompute_freqs_cis
        scale0 = (c.qk_nope_head_dim + c.qk_rope_head_dim) ** -0.5
        out["yarn"] = {"low": low, "high": high, "ramp": f9(ramp), "mscale_all_dim_factor": f9(m),
                       "softmax_scale_unscaled": f9(scale0),
                       "hf_vs_official_inv_freq_max_rel_diff": f9(((rot.inv_freq - official) / official)
                                                                 .abs().max()),
                       "hf_vs_official_softmax_scale_rel_diff": f9(abs(att.scaling / (scale0 * m * m) - 1))}
    return out


def weight_probes(raw, names):
    probes = []
    for name in names:
        t = raw[name]
        idxs = [[0, 0], [0, 1], [t.shape[0] - 1, t.shape[1] - 1], [t.shape[0] // 2, min(129, t.shape[1] - 1)]]
        for r, cidx in idxs:
            if t.dtype == torch.float8_e4m3fn:
                s = raw[name + "_scale_inv"][r // FP8_BLOCK, cidx // FP8_BLOCK]
                q = t[r, cidx].to(torch.float32)
                probes.append({"name": name, "index": [r, cidx], "stored_as": "F8_E4M3", "fp8_value": f9(q),
                               "scale_inv": f9(s), "value": f9(q * s)})  # float32 product
            else:
                probes.append({"name": name, "index": [r, cidx], "stored_as": str(t.dtype).split(".")[-1].upper()
                               .replace("BFLOAT16", "BF16").replace("FLOAT32", "F32"),
                               "value": f9(t[r, cidx].to(torch.float32).item())})
    return probes


def sha256(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


@torch.no_grad()
def routing_golden(model, probe, prompt):
    probe.reset()
    full_logits(model, prompt)
    layers = {}
    for i, chunks in probe.choice.items():
        ids, w = chunks[0]
        order = ids.argsort(-1)
        layers[str(i)] = {"expert_ids": ids.gather(1, order).tolist(), "weights": f9(w.gather(1, order))}
    probe.reset()
    return {"prompt": DECODE_FULL_PROMPT, "layers": layers,
            "note": "per MoE layer (key = layer index), per prompt position: the chosen experts in ascending id "
                    "order and their final weights (already x routed_scaling_factor)"}


def make_fixture(name, spec):
    d = os.path.join(OUT, name)
    cfg = make_config(spec)
    master = draw_weights(cfg, spec["seed"])
    write_checkpoint(d, cfg, storage_tensors(cfg, master, spec["fp8"]), spec["shards"])
    weights, raw = read_checkpoint(d)
    model = hf_model(d, weights)
    probe = RouterProbe(model)
    runs = [draw_prompt(model, probe, cfg["vocab_size"], n, spec["prompt_seed"]) for n in PROMPT_LENGTHS]
    g = {"schema_version": 1,
         "reference": {"implementation": "Hugging Face transformers " + type(model).__name__,
                       "transformers": transformers.__version__, "torch": torch.__version__,
                       "compute_dtype": "float32", "attn_implementation": "eager",
                       "experts_implementation": "eager",
                       "weights": "read back from the written files; FP8 weights dequantized as "
                                  "float32(q) * weight_scale_inv per 128x128 block" if spec["fp8"] else
                                  "read back from the written files (BF16 and F32 are exact in float32)"},
         "prompts": [r["prompt"] for r in runs], "n_new_tokens": N_NEW, "derived": derived(model)}
    g["prefill"] = [{"prompt": k, "last_logits": f9(r["steps"][0]), "top5": top5(r["steps"][0])}
                    for k, r in enumerate(runs)]
    r2 = runs[ALL_POSITIONS_PROMPT]
    g["all_positions"] = {"prompt": ALL_POSITIONS_PROMPT,
                          "logits": f9(r2["full"][:len(r2["prompt"])])}
    r1 = runs[DECODE_FULL_PROMPT]
    g["decode_full_logits"] = {"prompt": DECODE_FULL_PROMPT, "logits": f9(r1["steps"])}
    g["greedy"] = []
    inc_vs_full = 0.0
    for k, r in enumerate(runs):
        n = len(r["prompt"])
        diff = (r["steps"] - r["full"][n - 1:]).abs().max().item()
        inc_vs_full = max(inc_vs_full, diff)
        steps = []
        for j in range(N_NEW):
            t = top5(r["steps"][j])
            steps.append({"pos": n - 1 + j, **t, "margin": f9(t["values"][0] - t["values"][1])})
        g["greedy"].append({"prompt": k, "new_tokens": r["toks"], "steps": steps,
                            "min_top1_margin": f9(r["margin"]), "incremental_vs_full_max_abs_diff": f9(diff)})
    g["routing"] = routing_golden(model, probe, r1["prompt"])
    probes = [n for n in ("model.layers.0.self_attn.q_a_proj.weight", "model.layers.0.self_attn.q_proj.weight",
                          "model.layers.0.self_attn.kv_b_proj.weight", "model.layers.0.mlp.down_proj.weight",
                          f"model.layers.{cfg['num_hidden_layers'] - 1}.mlp.experts.1.up_proj.weight",
                          f"model.layers.{cfg['num_hidden_layers'] - 1}.mlp.gate.weight") if n in raw]
    g["weight_probes"] = weight_probes(raw, probes)
    if cfg["model_type"] == "deepseek_v3":
        b = raw[f"model.layers.{cfg['num_hidden_layers'] - 1}.mlp.gate.e_score_correction_bias"]
        g["weight_probes"].append({"name": f"model.layers.{cfg['num_hidden_layers'] - 1}.mlp.gate."
                                   "e_score_correction_bias", "index": [3], "stored_as": "F32",
                                   "value": f9(b[3].item())})
    g["self_checks"] = {"incremental_vs_full_recompute_max_abs_diff": f9(inc_vs_full),
                        "min_greedy_margin": f9(min(r["margin"] for r in runs)),
                        "min_routing_margin_experts": f9(min(r["routing_margin_experts"] for r in runs)),
                        "min_routing_margin_groups": f9(min(r["routing_margin_groups"] for r in runs)),
                        "routing_margin_space": "biased sigmoid scores" if cfg["model_type"] == "deepseek_v3"
                        else "router logits (softmax is monotone)"}
    if spec["fp8"]:
        g["self_checks"]["fp8"] = fp8_checks(cfg, master, raw, weights)
        g["self_checks"]["fp8"]["activation_quant_sensitivity"] = act_quant_sensitivity(model, runs)
        g["self_checks"]["fp8"]["bf16_dequant_sensitivity"] = bf16_dequant_sensitivity(d, weights, raw, runs)
    if cfg["model_type"] == "deepseek_v2":
        g["self_checks"]["v2_through_v3_code_max_abs_diff"] = f9(v2_through_v3_code(d, cfg, weights, runs))
    files = sorted(f for f in os.listdir(d) if f != "golden.json" and f != "README.md")
    g["fixture"] = {"name": name, "weight_seed": spec["seed"], "prompt_seed": spec["prompt_seed"],
                    "prompt_trials": [r["trial"] for r in runs],
                    "prompt_acceptance": {"min_greedy_margin": MIN_GREEDY_MARGIN,
                                          "min_routing_margin": MIN_ROUTING_MARGIN,
                                          "min_distinct_new_tokens": MIN_DISTINCT_NEW},
                    "files": {f: sha256(os.path.join(d, f)) for f in files}}
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(g, f, separators=(",", ":"))
    print(f"{name}: trials {g['fixture']['prompt_trials']}, self_checks {json.dumps(g['self_checks'])}")
    return g


def fp8_checks(cfg, master, raw, weights):
    """The written FP8 tensors: block-scale shapes, and what quantization did to the weights."""
    worst_rel, n_q, partial = 0.0, 0, 0
    for name, t in raw.items():
        if t.dtype != torch.float8_e4m3fn:
            continue
        n_q += 1
        s = raw[name + "_scale_inv"]
        assert list(s.shape) == [-(-t.shape[0] // FP8_BLOCK), -(-t.shape[1] // FP8_BLOCK)], name
        partial += int(t.shape[0] % FP8_BLOCK != 0 or t.shape[1] % FP8_BLOCK != 0)
        e = (weights[name] - master[name]).abs().max() / master[name].abs().max()
        worst_rel = max(worst_rel, e.item())
    return {"quantized_tensors": n_q, "with_partial_edge_blocks": partial,
            "max_dequant_error_relative_to_tensor_amax": f9(worst_rel)}


@torch.no_grad()
def act_quant_sensitivity(model, runs):
    """How far the goldens move if every quantized linear also quantizes its input to FP8 per
    1x128 group (DeepSeek's dynamic activation scheme); tells engines that do so what to expect."""
    def aq(x):
        shp = x.shape
        pad = (-shp[-1]) % FP8_BLOCK
        xp = torch.nn.functional.pad(x, (0, pad)).view(*shp[:-1], -1, FP8_BLOCK)
        s = xp.abs().amax(-1, keepdim=True).clamp_min(1e-12) / FP8_MAX
        y = (xp / s).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).to(torch.float32) * s
        return y.view(*shp[:-1], -1)[..., :shp[-1]]
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and name != "lm_head":  # the router is not an nn.Linear
            hooks.append(mod.register_forward_pre_hook(lambda _m, a: (aq(a[0]),)))
    worst = 0.0
    try:
        r = runs[ALL_POSITIONS_PROMPT]
        worst = (full_logits(model, r["prompt"]) - r["full"][:len(r["prompt"])]).abs().max().item()
    finally:
        for h in hooks:
            h.remove()
    return {"prompt": ALL_POSITIONS_PROMPT, "max_abs_diff_all_positions": f9(worst),
            "scope": "attention projections, dense MLP and shared experts (routed experts not quantized "
                     "in this estimate)"}


@torch.no_grad()
def bf16_dequant_sensitivity(d, weights, raw, runs):
    """How far the goldens move if FP8 weights are dequantized into BF16 (what the official
    reference's default path and DeepSeek's fp8_cast_bf16 do) instead of float32."""
    w = {n: (t.to(torch.bfloat16).to(torch.float32) if raw[n].dtype == torch.float8_e4m3fn else t)
         for n, t in weights.items()}
    model = hf_model(d, w)
    r = runs[ALL_POSITIONS_PROMPT]
    worst = (full_logits(model, r["prompt"]) - r["full"][:len(r["prompt"])]).abs().max().item()
    same = all(greedy_run(model, x["prompt"])[0] == x["toks"] for x in runs)
    return {"prompt": ALL_POSITIONS_PROMPT, "max_abs_diff_all_positions": f9(worst),
            "greedy_tokens_equal_all_prompts": same}


def v2_router_forward(self, hidden_states):
    """DeepSeek-V2 gate (softmax, greedy / group-limited greedy with the per-group max, no
    renormalisation when norm_topk_prob is false, x routed_scaling_factor), written from the
    original DeepSeek-V2 modeling code, to drive the V3 classes."""
    c = self.v2_config
    x = hidden_states.view(-1, self.hidden_dim)
    logits = torch.nn.functional.linear(x.float(), self.weight.float())
    scores = logits.softmax(dim=-1)
    if c["topk_method"] == "group_limited_greedy":
        g = c["n_group"]
        gs = scores.view(-1, g, scores.shape[-1] // g).max(-1).values
        keep = torch.zeros_like(gs).scatter_(1, gs.topk(c["topk_group"], -1)[1], 1).bool()
        scores = scores.masked_fill(~keep.repeat_interleave(scores.shape[-1] // g, 1), 0.0)
    w, idx = scores.topk(c["num_experts_per_tok"], dim=-1)
    assert not c["norm_topk_prob"]
    return logits, w * c["routed_scaling_factor"], idx


@torch.no_grad()
def v2_through_v3_code(d, cfg, weights, runs):
    """The V2 fixture run through DeepseekV3ForCausalLM (whose MLA, RoPE and YaRN match the official
    V3 reference, see the anchor check) with only the gate swapped for V2's: cross-checks the V2
    classes' attention, complex-number RoPE and YaRN mscale handling."""
    import tempfile
    c3 = dict(cfg, model_type="deepseek_v3", architectures=["DeepseekV3ForCausalLM"], num_nextn_predict_layers=0)
    w = dict(weights)
    for n in range(cfg["first_k_dense_replace"], cfg["num_hidden_layers"]):
        w[f"model.layers.{n}.mlp.gate.e_score_correction_bias"] = torch.zeros(cfg["n_routed_experts"])
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(c3, f)
        model = hf_model(tmp, w)
    for layer in model.model.layers:
        gate = getattr(layer.mlp, "gate", None)
        if gate is not None and hasattr(gate, "routed_scaling_factor"):
            gate.v2_config = cfg
            gate.forward = v2_router_forward.__get__(gate)
    worst = 0.0
    for r in runs:
        ids = r["prompt"] + r["toks"][:-1]
        worst = max(worst, (full_logits(model, ids) - r["full"]).abs().max().item())
    return worst


@torch.no_grad()
def anchor_check():
    """HF's DeepseekV3ForCausalLM on tiny-dsv3 vs its official-reference goldens."""
    weights, _ = read_checkpoint(TINY)
    model = hf_model(TINY, weights)
    g = json.load(open(os.path.join(TINY, "golden.json")))
    worst_prefill, worst_decode, same_tokens = 0.0, 0.0, True
    for k, prompt in enumerate(g["prompts"]):
        logits = full_logits(model, prompt)[-1]
        worst_prefill = max(worst_prefill, (logits - torch.tensor(g["prefill"][k]["last_logits"])).abs().max().item())
        cache = DynamicCache(config=model.config)
        out = model(input_ids=torch.tensor([prompt]), cache=cache, use_cache=True)
        toks = []
        for j in range(len(g["greedy"][k]["new_tokens"])):
            step = out.logits[0, -1]
            ref = g["greedy"][k]["steps"][j]
            worst_decode = max(worst_decode, (step[ref["ids"]] - torch.tensor(ref["values"])).abs().max().item())
            toks.append(int(step.argmax()))
            out = model(input_ids=torch.tensor([[toks[-1]]]), cache=cache, use_cache=True)
        same_tokens &= toks == g["greedy"][k]["new_tokens"]
    full = full_logits(model, g["prompts"][2])
    worst_all = (full - torch.tensor(g["all_positions"]["logits"])).abs().max().item()
    res = {"prefill_last_logits_max_abs_diff": worst_prefill, "all_positions_max_abs_diff": worst_all,
           "greedy_top5_values_max_abs_diff": worst_decode, "greedy_tokens_equal": same_tokens}
    print("anchor (HF vs tiny-dsv3 official goldens):", json.dumps(res))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anchor", action="store_true", help="only compare HF with the tiny-dsv3 goldens")
    ap.add_argument("--only", choices=sorted(FIXTURES), help="make one fixture")
    a = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    torch.use_deterministic_algorithms(True)
    anchor_check()
    if a.anchor:
        return 0
    for name, spec in FIXTURES.items():
        if a.only in (None, name):
            make_fixture(name, spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
