"""The CycloneDX 1.6 JSON format as packaging/sbom.py writes it, and the checks of it that need no network.

``structure_errors`` checks what the CycloneDX JSON schema would reject and can be checked offline
(bomFormat, specVersion, serialNumber, component type/name, bom-ref uniqueness, hash lengths,
the licence choice: one SPDX expression or a list of licences, dependency refs that resolve), plus
our own rule that every component but a file names its folder in licenses/ (``kiig:licenseDir``).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid

SPEC_VERSION = "1.6"
COMPONENT_TYPES = ("application", "framework", "library", "container", "platform", "operating-system", "device",
                   "device-driver", "firmware", "file", "machine-learning-model", "data", "cryptographic-asset")
HASH_LENGTHS = {"SHA-256": 64, "SHA-512": 128, "SHA-1": 40}
_SERIAL = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def serial_number(bom: dict) -> str:
    """``urn:uuid:`` + a UUID derived from the BOM's content (no random serial: the archive is reproducible)."""
    body = {k: v for k, v in bom.items() if k != "serialNumber"}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'kiig-desktop-sbom:' + digest)}"


def walk(components: list[dict]):
    """Every component, nested ones included."""
    for comp in components:
        yield comp
        yield from walk(comp.get("components", []))


def structure_errors(bom: dict) -> list[str]:
    """What the CycloneDX 1.5/1.6 JSON schema would reject that can be checked offline, plus our own rules."""
    errors = []
    if bom.get("bomFormat") != "CycloneDX" or bom.get("specVersion") not in ("1.5", "1.6"):
        errors.append("bomFormat/specVersion")
    if not _SERIAL.match(bom.get("serialNumber", "")) or not isinstance(bom.get("version"), int) or bom["version"] < 1:
        errors.append("serialNumber/version")
    root = bom.get("metadata", {}).get("component")
    every = ([root] if root else []) + list(walk(bom.get("components", [])))
    refs = [c.get("bom-ref") for c in every]
    for ref in sorted({r for r in refs if refs.count(r) > 1}):
        errors.append(f"duplicate bom-ref {ref}")
    for comp in every:
        name = comp.get("bom-ref") or comp.get("name")
        if comp.get("type") not in COMPONENT_TYPES or not comp.get("name") or not comp.get("bom-ref"):
            errors.append(f"{name}: type/name/bom-ref")
        for h in comp.get("hashes", []):
            if len(h.get("content", "")) != HASH_LENGTHS.get(h.get("alg"), -1) or not re.fullmatch(r"[0-9a-f]+", h["content"]):
                errors.append(f"{name}: bad hash {h}")
        lic = comp.get("licenses")
        if comp.get("type") != "file":
            exprs = [x for x in lic or [] if "expression" in x]
            named = [x for x in lic or [] if set(x) == {"license"} and ({"id", "name"} & set(x["license"]))]
            if not lic or not ((len(lic) == 1 and len(exprs) == 1) or len(named) == len(lic)):
                errors.append(f"{name}: licenses must be one expression or a list of licenses")
            if not any(p["name"] == "kiig:licenseDir" for p in comp.get("properties", [])):
                errors.append(f"{name}: no kiig:licenseDir")
    known = set(refs)
    for dep in bom.get("dependencies", []):
        for ref in [dep.get("ref"), *dep.get("dependsOn", [])]:
            if ref not in known:
                errors.append(f"dependency on unknown bom-ref {ref}")
    return errors


def licence_dirs(bom: dict) -> dict[str, str]:
    """licenses/ folder -> bom-ref, for every component that names one."""
    root = bom["metadata"]["component"]
    return {p["value"]: c["bom-ref"] for c in [root, *walk(bom["components"])]
            for p in c.get("properties", []) if p["name"] == "kiig:licenseDir"}
