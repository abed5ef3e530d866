"""``kiig models``: the models this machine offers; ``kiig models checksums FOLDER`` writes the
SHA256SUMS file that ``install.sh --models-from FOLDER`` checks."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..engine.models import discover_models
from ..errors import InputError, terminal_safe
from ..files import file_sha256, write_private_text
from ..units import human_bytes, human_count
from ._common import print_json

CHECKSUMS_FILE = "SHA256SUMS"


def register(sub) -> None:
    p = sub.add_parser("models", help="list discovered GGUF models (builtin, models folder, shared folders, LM Studio, Ollama)",
                       description="Without an ACTION: list the models found, with the id to pass as --model. "
                                   "`kiig models checksums FOLDER` writes FOLDER/SHA256SUMS for the offline installer.")
    p.add_argument("--json", action="store_true", help="machine-readable output, with SHA-256 of each file")
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="models_command", metavar="ACTION", help="optional")
    c = actions.add_parser("checksums", help="write FOLDER/SHA256SUMS for its .gguf files (subfolders included), "
                                             "in sha256sum's format, for `install.sh --models-from FOLDER`")
    c.add_argument("folder", metavar="FOLDER", help="the folder of .gguf files to carry (a USB stick, a share)")
    c.set_defaults(func=run_checksums)


def gguf_files(folder: Path) -> list[Path]:
    """Every regular ``*.gguf`` file under ``folder``, sorted; links are left out, as install.sh
    (``find -type f``) leaves them."""
    found = []
    for base, _dirs, files in os.walk(folder):
        found += [p for f in files if f.endswith(".gguf") and (p := Path(base, f)).is_file() and not p.is_symlink()]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def run_checksums(args: argparse.Namespace) -> int:
    folder = Path(args.folder).expanduser()
    if not folder.is_dir():
        raise InputError(f"no folder {folder}")
    files = gguf_files(folder)
    if not files:
        raise InputError(f"no .gguf files in {folder} or its subfolders")
    lines = []
    for path in files:
        rel = path.relative_to(folder).as_posix()
        if "\n" in rel or "\\" in rel:
            raise InputError(f"{rel!r}: a file name with a newline or backslash cannot be listed in {CHECKSUMS_FILE}; rename it")
        print(f"hashing {rel} ({human_bytes(path.stat().st_size)})", flush=True)
        lines.append(f"{file_sha256(path)}  {rel}\n")
    out = write_private_text(folder / CHECKSUMS_FILE, "".join(lines))
    print(f"wrote {out}: {len(lines)} models (check with: cd {folder} && sha256sum -c {CHECKSUMS_FILE})")
    return 0


def run(args: argparse.Namespace) -> int:
    models = discover_models()
    if args.json:
        print_json({"models": [m.to_dict(with_sha256=True) for m in models]})
        return 0
    if not models:
        print("no models found; put .gguf files in the models folder or install the embedded model")
        return 0
    rows = [("ID", "SOURCE", "ARCH", "QUANT", "PARAMS", "CONTEXT", "SIZE", "PATH")]
    for m in models:
        h = m.header
        # ids, paths and header strings come from file names and GGUF metadata: control characters shown, never sent
        rows.append(tuple(terminal_safe(c) for c in (
            m.id, m.source, h.architecture if h else "-", h.quantization if h else "-",
            human_count(h.parameters) if h else "-", str(h.context_length or "?") if h else "-",
            human_bytes(m.size), m.path if not m.error else f"{m.path}  ({m.error})",
        )))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return 0
