"""Issue 28 (B, I, J, L, M), through the real ``kiig`` command as a subprocess: hostile terminal
text in item ids, whole-file claims checks with the line-length limit, bounded --threads, a data
folder left 0777 by another user with planted links and a forged cache, a full data disk."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from kiig_desktop.chains.dataset_files import MAX_LINE_BYTES
from kiig_desktop.config import max_threads
from tests.support.cli import kiig, one_clear_line
from tests.support.gguf_factory import write_tiny_gguf

HOSTILE_ID = "x\u001b]0;x\u0007\u001b[2J\r\nkiig: all good"


def _no_raw_controls(text: str) -> None:
    for c in ("\x1b", "\x07", "\r"):
        assert c not in text, repr(text[-2000:])
    assert not any(ln.startswith("kiig: all good") for ln in text.splitlines()), text[-2000:]


# ------------------------------------------------------------------------------------------ M


def _threads_cases(tmp_path: Path) -> dict[str, list]:
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"id": "a", "question": "What is 2 + 2?", "answer": "4", "steps": ["2 + 2 = 4."]}) + "\n")
    return {
        "generate": ["generate", "--model", "default", "--prompt", "hi", "--max-tokens", "1"],
        "score": ["score", "--model", "default", "--input", data, "--output", tmp_path / "out.jsonl"],
        "run": ["run", "--dataset", data, "--models", "default", "--scorer", "default", "--db", tmp_path / "s.kiig",
                "--max-tokens", "1"],
        "doctor": ["doctor", "--model", "default"],
    }


@pytest.mark.slow
def test_threads_out_of_range_is_one_line_before_any_model_work(tmp_path):
    top = max_threads()
    assert top == min(256, 4 * (os.cpu_count() or 1))
    for command, argv in _threads_cases(tmp_path).items():
        for value in (0, 100_000, top + 1):
            r = kiig(*argv, "--threads", str(value), timeout=300)
            line = one_clear_line(r, f"--threads must be between 1 and {top}, got {value}", "cores")
            assert "crash" in line, line
            assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "s.kiig").exists(), command


def test_threads_setting_in_settings_json_is_bounded_too(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    (data_dir / "settings.json").write_text(json.dumps({"engine": {"n_threads": 100_000}}))
    r = kiig("generate", "--model", "default", "--prompt", "hi", "--max-tokens", "1", timeout=300,
             env={**os.environ, "KIIG_DATA_DIR": str(data_dir)})
    one_clear_line(r, "threads setting (settings.json) must be between 1 and", "got 100000")


# ------------------------------------------------------------------------------------------ J


def test_escape_codes_in_item_ids_are_shown_not_obeyed(tmp_path):
    src = tmp_path / "in.jsonl"
    long_question = "word " * 400  # longer than the 256-token context: the item fails and its id is printed
    src.write_text(json.dumps({"id": HOSTILE_ID, "question": long_question, "answer": "4", "steps": ["s."]}) + "\n")
    r = kiig("score", "--model", "default", "--input", src, "--output", tmp_path / "out.jsonl", "--n-ctx", "256", timeout=300)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "x\\x1b]0;x\\x07\\x1b[2J\\x0d\\x0akiig: all good" in r.stderr, r.stderr[-2000:]
    assert "needs" in r.stderr and "context holds 256" in r.stderr, r.stderr[-2000:]
    _no_raw_controls(r.stderr)
    out = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8"))
    assert out["id"] == HOSTILE_ID  # the data itself is kept as it was


def test_escape_codes_in_an_error_message_are_shown_not_obeyed(tmp_path):
    r = kiig("generate", "--model", str(tmp_path / "\u001b]0;x\u0007\u001b[2J\r\nkiig: all good.gguf"), "--prompt", "hi")
    one_clear_line(r, "\\x1b]0;x\\x07\\x1b[2J\\x0d\\x0akiig: all good.gguf")
    _no_raw_controls(r.stderr)


# ------------------------------------------------------------------------------------------ L


def _claim(i: int, label: bool) -> str:
    return json.dumps({"id": f"c{i}", "claim": f"Claim number {i}.", "label": label})


def test_claims_file_lists_every_bad_line(tmp_path):
    claims = tmp_path / "claims.jsonl"
    lines = [_claim(1, True), "{not json", _claim(3, False), json.dumps({"id": "c4", "claim": "no label"}), "[1, 2]",
             _claim(6, True)]
    claims.write_text("\n".join(lines) + "\n")
    r = kiig("judge-check", "--model", "default", "--claims", claims, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert f"{claims}: 3 bad lines" in r.stderr, r.stderr
    for n in (2, 4, 5):
        assert f"line {n}:" in r.stderr, (n, r.stderr)
    assert "needs a \"claim\"" in r.stderr and "not a JSON object" in r.stderr, r.stderr


def test_claims_file_line_length_limit(tmp_path):
    claims = tmp_path / "claims.jsonl"
    huge = json.dumps({"id": "big", "claim": "x" * (MAX_LINE_BYTES + 10), "label": False})
    claims.write_text("\n".join([_claim(1, True), huge, _claim(3, False)]) + "\n")
    r = kiig("judge-check", "--model", "default", "--claims", claims, timeout=300)
    one_clear_line(r, f"{claims}: line 2: line longer than {MAX_LINE_BYTES >> 20} MiB")


def test_dataset_line_length_limit_is_shared_by_score(tmp_path):
    src = tmp_path / "in.jsonl"
    huge = json.dumps({"id": "big", "question": "q" * (MAX_LINE_BYTES + 10), "answer": "4", "steps": ["s"]})
    good = json.dumps({"id": "a", "question": "What is 2 + 2?", "answer": "4", "steps": ["2 + 2 = 4."]})
    src.write_text(good + "\n" + huge + "\n")
    r = kiig("score", "--model", "default", "--input", src, "--output", tmp_path / "out.jsonl", timeout=300)
    one_clear_line(r, f"{src}: line 2: line longer than")


# ------------------------------------------------------------------------------------------ B


def _env(tmp_path: Path, data_dir: Path) -> dict:
    models = tmp_path / "models"
    if not (models / "tiny.gguf").exists():
        write_tiny_gguf(models / "tiny.gguf")
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {**os.environ, "KIIG_DATA_DIR": str(data_dir), "KIIG_MODELS_DIR": str(models), "HOME": str(home)}


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _reported_sha(r: subprocess.CompletedProcess, path: Path) -> str:
    assert r.returncode == 0, r.stderr[-2000:]
    return next(m["sha256"] for m in json.loads(r.stdout)["models"] if Path(m["path"]) == path)


def test_cli_tightens_a_0777_data_folder_and_never_writes_through_planted_links(tmp_path):
    data = tmp_path / "data"
    cache = data / "cache"
    cache.mkdir(parents=True)
    settings = data / "settings.json"
    settings.write_text("{}")
    for path, mode in ((data, 0o777), (cache, 0o777), (settings, 0o666)):
        os.chmod(path, mode)
    target = tmp_path / "precious.txt"
    target.write_text("the kiig user's own file\n")
    env = _env(tmp_path, data)
    # another local user plants links under the names the next kiig processes would use
    next_pid = int(Path("/proc/sys/kernel/ns_last_pid").read_text()) + 1
    for pid in range(next_pid, next_pid + 300):
        for name in ("sha256", "gguf_headers"):
            (cache / f"{name}.{pid}.tmp").symlink_to(target)
    r = kiig("models", "--json", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert target.read_text() == "the kiig user's own file\n"
    assert (_mode(data), _mode(cache), _mode(settings)) == (0o700, 0o700, 0o600)
    tiny = tmp_path / "models" / "tiny.gguf"
    assert _reported_sha(r, tiny) == hashlib.sha256(tiny.read_bytes()).hexdigest()
    assert _mode(cache / "sha256.json") == 0o600


def _forge(cache_file: Path) -> None:
    forged = json.loads(cache_file.read_text())
    for entry in forged.values():
        entry["sha256"] = "0" * 64  # same stamps, another digest: forged provenance
    cache_file.write_text(json.dumps(forged))


def test_a_cache_file_another_user_could_have_written_is_not_believed(tmp_path):
    data = tmp_path / "data"
    env = _env(tmp_path, data)
    tiny = tmp_path / "models" / "tiny.gguf"
    real = hashlib.sha256(tiny.read_bytes()).hexdigest()
    cache_file = data / "cache" / "sha256.json"
    for forger in ("written by anyone (0666)", "owned by another user"):
        assert _reported_sha(kiig("models", "--json", env=env), tiny) == real  # a genuine cache first
        _forge(cache_file)
        if forger.startswith("written"):
            os.chmod(cache_file, 0o666)
        else:
            os.chown(cache_file, 65534, 65534)  # nobody
            assert _mode(cache_file) == 0o600
        assert _reported_sha(kiig("models", "--json", env=env), tiny) == real, forger


# ------------------------------------------------------------------------------------------ I


def _fill(disk: Path) -> None:
    with open(disk / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass


def _leftovers(data: Path) -> list[str]:
    return sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.name.endswith((".tmp", ".part")))


def test_a_full_data_disk_is_one_clear_line_and_leaves_no_tmp_files(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        raise AssertionError(f"this test needs root (CAP_SYS_ADMIN) to mount a 64 KiB tmpfs: {mounted.stderr.strip()}")
    try:
        data = disk / "data"
        (data / "cache").mkdir(parents=True, mode=0o700)
        os.chmod(data, 0o700)
        env = _env(tmp_path, data)
        claims = tmp_path / "claims.jsonl"
        claims.write_text("\n".join(_claim(i, i % 2 == 0) for i in range(4)) + "\n")
        _fill(disk)
        r = kiig("models", "--json", env=env)  # caches that cannot be written cost only a re-hash
        assert r.returncode == 0, r.stderr[-2000:]
        assert _leftovers(data) == []
        r = kiig("judge-check", "--model", "default", "--claims", claims, env=env, timeout=600)
        one_clear_line(r, "no space left on device writing", str(data / "judge_validation.json"))
        assert _leftovers(data) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)
