"""``kiig doctor``: is this llama.cpp build usable here? A smoke decode in a child process says."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys
import time

from .. import __version__
from ..engine import variants
from ..engine.client import EngineClient, cpu_has_amx
from ..engine.models import BUILTIN_ID, discover_models
from ..errors import KiigError
from ..metrics.infogain import incremental_error
from ._common import add_engine_args, engine_options, print_json


def register(sub) -> None:
    p = sub.add_parser("doctor", help="check the llama.cpp build with a smoke decode in a child process")
    p.add_argument("--model", default=BUILTIN_ID, help="model for the smoke decode (default: the embedded model)")
    p.add_argument("--json", action="store_true")
    add_engine_args(p)
    p.set_defaults(func=run)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _requested_variant() -> str:
    try:
        return variants.requested()
    except KiigError as exc:
        return f"invalid ({exc.message})"


def _exactness(client) -> dict:
    """Does incremental scoring equal a one-pass and a token-by-token evaluation with this model and build?

    Kernels can make a token's logits depend on the batch it is decoded in; then every number differs.
    """
    err = incremental_error(
        client, "What colour is the sky on a clear day?", "blue",
        ["Sunlight is scattered by the air.", "Short wavelengths scatter the most.", "So the sky looks blue."],
    )
    worst = max(err.values())
    return {"max_abs_nats": worst, "one_pass_nats": err["one_pass"], "token_by_token_nats": err["token_by_token"], "exact": worst < 1e-4}


def check(model: str = BUILTIN_ID, options=None) -> dict:
    """Run the smoke decode and gather build facts; never raises for an expected failure."""
    report: dict = {
        "kiig": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "llama_cpp_python": _version("llama_cpp_python"),
        "cpu": {"amx": cpu_has_amx()},
        "cpu_variants": {"built": list(variants.available()), "requested": _requested_variant()},
        "cpu_variant": None,
        "kquant_invariant": None,
        "tiled_mm": None,
        "batch_invariant": None,
        "system_info": None,
        "gpu_offload": None,
        "smoke": {"ok": False},
    }
    started = time.monotonic()
    try:
        with EngineClient(model, options) as client:
            info = client.start()
            report["system_info"] = info.get("system_info")
            report["llama_cpp_python"] = report["llama_cpp_python"] or info.get("llama_cpp_python")  # a frozen app has no metadata
            report["gpu_offload"] = info.get("gpu_offload")
            report["warnings"] = info.get("warnings", [])
            report["n_gpu_layers"] = client.options.n_gpu_layers
            build = client.build() or {}
            report["cpu_variant"] = build.get("cpu_variant")
            # our patched build multiplies K-quants batch-invariantly with the fast tiled kernel on
            report["kquant_invariant"] = bool(build.get("kquant_invariant"))
            report["tiled_mm"] = build.get("tiled_mm")
            # measured by the worker at load (engine/invariance.py); decides the scoring path
            report["batch_invariant"] = {**info.get("invariance", {}), "scoring": info.get("scoring"),
                                         "backend": build.get("backend")}
            result = client.call("smoke")
            ok = bool(result["finite"])
            report["smoke"] = {
                "ok": ok, "model": client.model.path, "seconds": round(time.monotonic() - started, 3),
                "next_token": result["top"], "entropy_bits": result["entropy_bits"],
            }
            if not ok:
                report["smoke"]["error"] = "the decode produced non-finite logits: this build computes garbage on this CPU"
            else:
                report["exactness"] = _exactness(client)
    except KiigError as exc:
        report["smoke"] = {"ok": False, "error": exc.message, "hint": exc.hint}
    try:
        report["models"] = [
            {"id": m.id, "name": m.name, "source": m.source, "path": m.path, **({"error": m.error} if m.error else {})}
            for m in discover_models()
        ]
    except OSError as exc:
        report["models"] = []
        report["models_error"] = str(exc)
    return report


def run(args: argparse.Namespace) -> int:
    report = check(args.model, engine_options(args))
    if args.json:
        print_json(report)
    else:
        print(f"kiig {report['kiig']} on Python {report['python']} ({report['platform']})")
        print(f"llama-cpp-python {report['llama_cpp_python'] or 'NOT INSTALLED'}")
        if report["system_info"]:
            print(f"llama.cpp system info: {report['system_info']}")
        gpu = report["gpu_offload"]
        print(f"GPU offload: {'supported by this build' if gpu else 'not available in this build (CPU only)' if gpu is not None else 'unknown'}")
        print(f"CPU has AMX: {'yes' if report['cpu']['amx'] else 'no'}")
        built = report["cpu_variants"]["built"]
        print(f"llama.cpp CPU variant: {report['cpu_variant'] or 'unknown'} (requested: {report['cpu_variants']['requested']}; "
              f"{'built: ' + ' '.join(built) if built else 'CPU backend built in, no variants'})")
        if report["kquant_invariant"] is not None:
            print(f"batch-invariant K-quant kernels: {'yes' if report['kquant_invariant'] else 'no'} "
                  f"(tiled K-quant matmul {'on' if report['tiled_mm'] else 'off'})")
        inv = report["batch_invariant"]
        if inv:
            print(f"batch invariance ({inv.get('backend')}, this model and settings): {inv.get('verdict')} in "
                  f"{inv.get('seconds', 0):.2f} s -- {inv.get('detail')}; scoring path: {inv.get('scoring')}")
        for warning in report.get("warnings", []):
            print(f"warning: {warning}", file=sys.stderr)
        smoke = report["smoke"]
        if smoke["ok"]:
            print(f"smoke decode: OK in {smoke['seconds']:.2f} s (next token {smoke['next_token']!r})")
        else:
            print(f"smoke decode: FAILED: {smoke.get('error')}", file=sys.stderr)
            if smoke.get("hint"):
                print(f"  fix: {smoke['hint']}", file=sys.stderr)
        ex = report.get("exactness")
        if ex:
            verdict = "exact" if ex["exact"] else "NOT exact: numbers depend on batch boundaries in this build (compare runs only with the same settings)"
            print(f"incremental scoring vs one-pass and token-by-token evaluation: max |diff| {ex['max_abs_nats']:.2e} nats ({verdict})")
        print(f"models found: {len(report['models'])}")
        for m in report["models"]:
            print(f"  {m['id']:<30} {m['source']:<9} {m['path']}" + (f"  ({m['error']})" if m.get("error") else ""))
    return 0 if report["smoke"]["ok"] else 1
