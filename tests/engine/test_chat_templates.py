"""Which chat template renders a model's prompts (engine/ops.py chat_template_source): the GGUF's own
Jinja template, a llama.cpp built-in named by the GGUF, or the plain "User:/Assistant:" fallback; a
broken Jinja template is one clear error. Tiny random-weight models (tests/support/tiny_models.py) carry each
case in their GGUF, loaded by the real worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiig_desktop.config import EngineOptions
from kiig_desktop.engine.client import EngineClient
from kiig_desktop.errors import KiigError
from tests.support.tiny_models import write_base_model

JINJA = ("{% for m in messages %}<<{{ m['role'] }}>>{{ m['content'] }}\n{% endfor %}"
         "{% if add_generation_prompt %}<<assistant>>{% endif %}")
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def model_with(tiny_models_dir):
    """model_with(template) -> path of a tiny llama-spm model whose GGUF carries ``template`` (None: none)."""
    made: dict = {}

    def make(template: str | None) -> Path:
        name = f"template-{len(made)}.gguf"
        if template not in made:
            made[template] = write_base_model("llama-spm", Path(tiny_models_dir) / name, chat_template=template)
        return made[template]

    return make


def _prompt(path: Path) -> tuple[list, str]:
    with EngineClient(str(path), EngineOptions(n_ctx=512)) as client:
        info = client.start()
        return list(info["chat_template_used"]), client.chat_prompt(MESSAGES)


@pytest.mark.slow
def test_a_jinja_template_in_the_gguf_renders_the_prompt(model_with):
    used, prompt = _prompt(model_with(JINJA))
    assert used == ["jinja", JINJA]
    assert prompt == "<<system>>Be brief.\n<<user>>hi\n<<assistant>>"


@pytest.mark.slow
def test_a_builtin_template_named_in_the_gguf_is_llama_cpps(model_with):
    used, prompt = _prompt(model_with("chatml"))
    assert used == ["builtin", "chatml"]
    assert prompt == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.slow
def test_no_template_and_an_unknown_architecture_fall_back_to_plain_turns(model_with):
    used, prompt = _prompt(model_with(None))
    assert used == ["plain", None]
    assert prompt == "System: Be brief.\nUser: hi\nAssistant:"


@pytest.mark.slow
def test_a_broken_jinja_template_is_one_clear_error(model_with):
    broken = "{% for m in messages %}{{ m['content'] }"  # neither the expression nor the loop is closed
    with EngineClient(str(model_with(broken)), EngineOptions(n_ctx=512)) as client:
        assert client.start()["chat_template_used"][0] == "jinja"
        with pytest.raises(KiigError, match=r"the chat template of \S+ could not be rendered"):
            client.chat_prompt(MESSAGES)
        assert client.detokenize(client.tokenize("still serving")).strip() == "still serving"  # SentencePiece adds a space
