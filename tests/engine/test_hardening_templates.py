"""Issue 28 C: a hostile chat template in a real GGUF (written with the gguf package around a real
tokenizer) is stopped by the rendering budget: ``kiig generate`` says so in one line and exits 2,
under an address-space limit far below what the template would take; in a batch the items of that
model fail with the message in their output lines and the batch goes on."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kiig_desktop.engine.chat_template import MAX_TEXT, render_chat
from tests.support.cli import one_clear_line
from tests.support.tiny_models import vocab_path, write_base_model

TEMPLATES = {
    "huge-string": '{{ "x" * 300000000 }}{% for m in messages %}{{ m.content }}{% endfor %}',
    "nested-range": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
                    "{% for m in messages %}{{ m.content }}{% endfor %}",
}
FRIENDLY = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
AS_LIMIT = 4 << 30  # the huge string alone would need 300 MB per copy; the worker's model load far less than this


@pytest.fixture(scope="module")
def hostile_models(tmp_path_factory) -> dict[str, Path]:
    if vocab_path("gpt-2") is None:
        pytest.fail("the gpt-2 vocab file is missing (run `make vocab`)")
    folder = tmp_path_factory.mktemp("hostile-templates")
    return {name: write_base_model("gpt-2", folder / f"{name}.gguf", chat_template=text, n_layer=1)
            for name, text in {**TEMPLATES, "friendly": FRIENDLY}.items()}


def _kiig_limited(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        pytest.fail("prlimit (util-linux) is needed to run kiig under an address-space limit")
    return subprocess.run([prlimit, f"--as={AS_LIMIT}", sys.executable, "-m", "kiig_desktop", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)  # the timeout only guards against a hang


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(TEMPLATES))
def test_generate_with_a_hostile_template_is_one_clear_line(hostile_models, case):
    path = hostile_models[case]
    r = _kiig_limited("generate", "--model", path, "--prompt", "hi", "--max-tokens", "2")
    line = one_clear_line(r, f"chat template of {path.name} exceeds the rendering budget")
    assert ("characters" if case == "huge-string" else "ran for more than") in line.split("budget", 1)[1], line


@pytest.mark.slow
def test_a_friendly_template_still_renders(hostile_models):
    path = hostile_models["friendly"]
    r = _kiig_limited("generate", "--model", path, "--prompt", "hi", "--max-tokens", "2", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["model"]["path"] == str(path)


@pytest.mark.slow
def test_render_budget_in_process_without_the_alarm():
    """Off the main thread there is no alarm: the sandbox's own deadline and size checks hold."""
    import threading

    errors: list[str] = []

    def render(template: str) -> None:
        try:
            render_chat(template, "m.gguf", [{"role": "user", "content": "hi"}], bos_token="", eos_token="")
        except Exception as exc:  # noqa: BLE001
            errors.append(str(exc))

    for template in (*TEMPLATES.values(), "{{ ('y' * 1000000) * 100 }}", '{{ "%0300000000d" % 1 }}',
                     '{{ "{:>300000000}".format(1) }}', "{{ 'a'.center(300000000) }}", "{{ 9 ** 99999999 }}"):
        t = threading.Thread(target=render, args=(template,))
        t.start()
        t.join(120)
        assert not t.is_alive(), template
    assert len(errors) == 7 and all("chat template of m.gguf exceeds the rendering budget" in e for e in errors), errors
    assert MAX_TEXT < 300_000_000


@pytest.mark.slow
def test_in_a_batch_the_items_of_that_model_fail_and_the_batch_goes_on(hostile_models, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n"
                            for i in range(1, 3)))
    r = _kiig_limited("run", "--dataset", data, "--models", hostile_models["huge-string"], hostile_models["friendly"],
                      "--scorer", hostile_models["friendly"], "--db", tmp_path / "s.kiig", "--max-tokens", "4", timeout=600)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    failed = [ln for ln in r.stderr.splitlines() if "exceeds the rendering budget" in ln]
    assert len(failed) == 2 and all("huge-string.gguf" in ln for ln in failed), r.stderr[-3000:]
    out = tmp_path / "out.jsonl"
    e = subprocess.run([sys.executable, "-m", "kiig_desktop", "export", "--db", tmp_path / "s.kiig", "--run", "1",
                        "--format", "jsonl", "--output", out], capture_output=True, text=True, timeout=300)
    assert e.returncode == 0, e.stderr[-2000:]
    rows = [json.loads(ln) for ln in out.read_text(encoding="utf-8").splitlines()]
    chains = {r["chain_key"]: r for r in rows}  # rows are per step; a key is subject:item
    assert len(chains) == 4, rows  # 2 items x 2 subjects, every one stored
    failed_keys = {k for k, r in chains.items() if "exceeds the rendering budget" in str(r.get("chain_error"))}
    done_keys = {k for k, r in chains.items() if r["chain_status"] == "finished" and not r.get("chain_error")}
    assert len(failed_keys) == 2 and len(done_keys) == 2, [(k, r["chain_status"], r.get("chain_error")) for k, r in chains.items()]
    assert len({k.split(":")[0] for k in failed_keys}) == 1, failed_keys  # both items of one subject
