"""How far KIIG's numbers can be trusted: exactness per weight type and tokenizer, and agreement with
an independent implementation.

1. For every weight type (F16, Q8_0, Q4_0, Q4_1, Q5_K_M, Q4_K_M, Q6_K) and tokenizer family (Qwen2,
   Llama 3, Llama 2/Mistral SentencePiece, Phi-3, GPT-2), on tiny random-weight models built around
   the real tokenizers (tests/support/tiny_models.py): the largest |incremental - one-pass| and
   |incremental - token-by-token| answer NLL over every prefix of two chains.
2. The embedded SmolLM2 (Q4_1) against Hugging Face transformers reading the same GGUF (weights
   dequantized to float32) in a separate virtual environment this script creates
   (~/.cache/kiig-desktop/fidelity-venv: torch, transformers, gguf): both score the same canonical
   token sequences of the demo chains; the per-prefix answer NLL and per-step delta NLL are compared
   (mean and max |d|, Pearson correlation), and transformers' own tokenization of each context is
   compared with llama.cpp's.

Usage: python benchmarks/fidelity.py [--skip-matrix] [--skip-hf] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _util import machine, save

from kiig_desktop.config import EngineOptions
from kiig_desktop.engine.client import EngineClient
from kiig_desktop.metrics.infogain import context_texts, plan_chain, reference_prefix, score_chain
from kiig_desktop.resources import resource_path
from tests.support.tiny_models import FAMILIES, WEIGHT_TYPES, tiny_model

VENV = Path.home() / ".cache" / "kiig-desktop" / "fidelity-venv"
HF_PACKAGES = ["torch==2.13.0", "transformers", "accelerate", "gguf", "numpy"]
CHAINS = [json.loads(x) for x in resource_path("chains", "clinical_chains.jsonl").read_text().splitlines()]
ARITH = {"question": "A box holds 12 pencils. How many pencils are in 3 boxes?", "answer": "36",
         "options": {"A": "36", "B": "15", "C": "12", "D": "4"}, "answer_idx": "A",
         "steps": ["Each box has 12 pencils.", "Three boxes hold 3 x 12 pencils.", "3 x 12 = 36.", "So there are 36 pencils."]}


def exactness_matrix(folder: Path) -> dict:
    out: dict = {}
    print("| weight type | " + " | ".join(FAMILIES) + " |")
    print("|---|" + "---:|" * len(FAMILIES))
    for wt in WEIGHT_TYPES:
        cells = []
        for fam in FAMILIES:
            with EngineClient(str(tiny_model(fam, wt, folder)), EngineOptions(n_ctx=1024, n_batch=16)) as c:
                c.start()
                one = each = 0.0
                for ch in (ARITH, CHAINS[0]):
                    q, a, steps, opts = ch["question"], ch["answer"], ch["steps"], ch.get("options")
                    r = score_chain(c, q, a, steps, opts, ch.get("answer_idx"), curve=False)
                    for k, p in enumerate([r["baseline"]] + r["steps"]):
                        one = max(one, abs(p["answer_nll"] - reference_prefix(c, q, a, steps, opts, k)["answer_nll"]))
                        each = max(each, abs(p["answer_nll"] - reference_prefix(c, q, a, steps, opts, k, chunk=1)["answer_nll"]))
            out.setdefault(wt, {})[fam] = {"one_pass": one, "token_by_token": each}
            cells.append(f"{max(one, each):.1e}")
        print(f"| {wt} | " + " | ".join(cells) + " |", flush=True)
    return out


def ensure_venv() -> Path:
    py = VENV / "bin" / "python"
    if not (VENV / ".complete").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *HF_PACKAGES], check=True)
        (VENV / ".complete").touch()
    return py


HF_SCRIPT = r'''
import json, sys, math
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
job = json.load(open(sys.argv[1]))
folder, name = job["folder"], job["file"]
tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
model.eval()
out = []
with torch.no_grad():
    for s in job["sequences"]:
        ids = torch.tensor([s["tokens"]])
        logits = model(ids).logits[0].double()
        lp = torch.log_softmax(logits, dim=-1)
        n = len(s["tokens"]); m = s["n_answer"]
        nll = -sum(float(lp[i - 1, s["tokens"][i]]) for i in range(n - m, n)) / m
        hf_ids = tok(s["context_text"], add_special_tokens=False)["input_ids"]
        out.append({"answer_nll": nll, "same_tokens": hf_ids == s["context_tokens_no_bos"]})
json.dump(out, open(sys.argv[2], "w"))
'''


def hf_agreement(work: Path) -> dict:
    sequences, ours, chain_of = [], [], []
    with EngineClient("default", EngineOptions(n_ctx=4096)) as c:
        c.start()
        model_path = Path(c.model.path)
        bos = 1 if c.info["add_bos"] else 0
        for ci, ch in enumerate(CHAINS):
            q, a, steps, opts = ch["question"], ch["answer"], ch["steps"], ch.get("options")
            r = score_chain(c, q, a, steps, opts, ch.get("answer_idx"), curve=False)
            plan = plan_chain(c, q, a, steps, opts, ch.get("answer_idx"))
            for p, entry, text in zip(plan.prefixes, [r["baseline"]] + r["steps"], context_texts(q, steps, opts), strict=True):
                sequences.append({"tokens": p["context"] + p["answer"], "n_answer": len(p["answer"]), "context_text": text,
                                  "context_tokens_no_bos": p["context"][bos:]})
                ours.append(entry["answer_nll"])
                chain_of.append(ci)
    py = ensure_venv()
    job = work / "job.json"
    job.write_text(json.dumps({"folder": str(model_path.parent), "file": model_path.name, "sequences": sequences}))
    (work / "hf.py").write_text(HF_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([str(py), str(work / "hf.py"), str(job), str(work / "hf.json")], check=True, env=env)
    theirs = json.loads((work / "hf.json").read_text())
    a, b = np.array(ours), np.array([t["answer_nll"] for t in theirs])
    chain = np.array(chain_of)
    # per-step delta NLL: consecutive prefixes of one chain
    da = np.array([a[i - 1] - a[i] for i in range(1, len(a)) if chain[i] == chain[i - 1]])
    db = np.array([b[i - 1] - b[i] for i in range(1, len(b)) if chain[i] == chain[i - 1]])
    res = {
        "model": str(model_path), "n_prefixes": len(a), "n_steps": len(da),
        "answer_nll": {"mean_abs_diff": float(np.mean(np.abs(a - b))), "max_abs_diff": float(np.max(np.abs(a - b))),
                       "pearson_r": float(np.corrcoef(a, b)[0, 1])},
        "delta_nll": {"mean_abs_diff": float(np.mean(np.abs(da - db))), "max_abs_diff": float(np.max(np.abs(da - db))),
                      "pearson_r": float(np.corrcoef(da, db)[0, 1])},
        "hf_tokenization_equal": sum(t["same_tokens"] for t in theirs),
    }
    print(f"\nSmolLM2-135M Q4_1, {len(a)} prefixes of {len(CHAINS)} demo chains, KIIG (llama.cpp) vs transformers on the same GGUF:")
    for key in ("answer_nll", "delta_nll"):
        r = res[key]
        print(f"  {key}: mean |d| {r['mean_abs_diff']:.4f} nats, max |d| {r['max_abs_diff']:.4f}, Pearson r {r['pearson_r']:.4f}")
    print(f"  transformers tokenizes {res['hf_tokenization_equal']} of {len(a)} contexts to the same ids as llama.cpp")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--skip-matrix", action="store_true")
    ap.add_argument("--skip-hf", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    result: dict = {"machine": machine()}
    tmp = Path(tempfile.gettempdir())
    if not args.skip_matrix:
        result["exactness"] = exactness_matrix(tmp / "kiig-bench-models")
    if not args.skip_hf:
        work = Path(tempfile.mkdtemp(prefix="kiig-fidelity-"))
        result["transformers"] = hf_agreement(work)
    save(args.out, result)


if __name__ == "__main__":
    main()
