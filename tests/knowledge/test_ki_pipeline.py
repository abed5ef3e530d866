"""ReasoningEval's KI pipeline (mode ``reasoningeval-pipeline``): the match and None rules with fake
generate functions, every stage kept, and the whole pipeline on the embedded model through
`kiig ki`, stored in the session. The old passage mode's name ``reasoningeval`` is read back renamed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiig_desktop.errors import ContextOverflow
from kiig_desktop.knowledge import ki as K
from kiig_desktop.knowledge import ki_pipeline as P
from kiig_desktop.knowledge import ki_rules
from kiig_desktop.knowledge.search import Passage, search
from kiig_desktop.resources import resource_path
from kiig_desktop.store import SessionStore
from tests.support.paths import ROOT

PASSAGES = [Passage(source=f"doc{n}", chunk=n, text=f"passage {n} " + "word " * 300, score=-float(n), chunk_id=n)
            for n in range(12)]


class Script:
    """A generate function that answers from a list and keeps every prompt it was given."""

    def __init__(self, *replies: str) -> None:
        self.replies, self.prompts = list(replies), []

    def __call__(self, messages: list[dict], max_tokens: int) -> str:
        self.prompts.append(messages)
        return self.replies.pop(0)


def _retrieve(seen: list[str]):
    def retrieve(query: str) -> list[Passage]:
        seen.append(query)
        return PASSAGES

    return retrieve


@pytest.mark.parametrize(("reply", "score"), [("True", 1.0), ("true", 1.0), ("TRUE", 1.0), ("False", 0.0),
                                              ("True.", 0.0), (" True", 0.0), ("True\n", 0.0), ("True, it is", 0.0), ("", 0.0)])
def test_the_match_rule_is_the_whole_reply_lower_cased(reply, score):
    assert ki_rules.pipeline_match(reply) == score
    seen: list[str] = []
    out = P.pipeline_step("Warfarin is monitored with the INR.", _retrieve(seen), Script("INR test?", "The INR."), Script(reply))
    assert out["ki"] == score and out["judge_reply"] == reply and out["applicable"]


@pytest.mark.parametrize("reply", ["None", "none", " None. ", "'None'"])
def test_a_none_query_scores_one_and_asks_nothing_more(reply):
    seen: list[str] = []
    rag, judge = Script(reply), Script()
    out = P.pipeline_step("Let us think step by step.", _retrieve(seen), rag, judge)
    assert out["ki"] == 1.0 and not out["applicable"] and out["reason"] == ki_rules.REASON_NO_QUERY_SCORED
    assert out["query_reply"] == reply and out["query"] is None and out["rag_answer"] is None and out["judge_reply"] is None
    assert not seen and not judge.prompts and len(rag.prompts) == 1


def test_a_failed_query_and_a_step_without_knowledge_score_one():
    seen: list[str] = []
    out = P.pipeline_step("Aspirin inhibits COX.", _retrieve(seen), Script("  \n "), Script())
    assert out["ki"] == 1.0 and out["reason"] == ki_rules.REASON_QUERY_FAILED and not seen
    rag = Script()
    out = P.pipeline_step("   ", _retrieve(seen), rag, Script())
    assert out["ki"] == 1.0 and not rag.prompts  # nothing to write a query for


def test_every_stage_is_kept_and_the_rag_model_reads_all_passages_in_full():
    seen: list[str] = []
    rag, judge = Script("  What monitors   warfarin? ", "Warfarin is monitored with the INR."), Script("True")
    out = P.pipeline_step("Warfarin is monitored with the INR.", _retrieve(seen), rag, judge)
    assert seen == ["What monitors warfarin?"] and out["query"] == "What monitors warfarin?"
    assert out["query_reply"] == "  What monitors   warfarin? "
    assert [e["chunk_id"] for e in out["evidence"]] == list(range(12))
    rag_prompt = rag.prompts[1][-1]["content"]
    assert all(" ".join(p.text.split()) in rag_prompt for p in PASSAGES)  # never clipped
    assert "Question: What monitors warfarin?" in rag_prompt
    judge_prompt = judge.prompts[0][-1]["content"]
    assert "Warfarin is monitored with the INR." in judge_prompt and out["rag_answer"] in judge_prompt
    assert out["ki"] == 1.0 and out["judge_reply"] == "True"


def test_a_prompt_too_long_names_the_stage_and_both_sizes():
    def overflow(messages, max_tokens):
        raise ContextOverflow("x", needed=5000, n_ctx=2048)

    with pytest.raises(ContextOverflow, match=r"^RAG model prompt is 5000 tokens; the RAG model's context is 2048 \(--n-ctx\)"):
        P.pipeline_step("Aspirin inhibits COX.", _retrieve([]), lambda m, n: "COX?" if len(m[-1]["content"]) < 400 else overflow(m, n),
                        Script())


class FakeModel:
    """A judge (and RAG model) for the chain level: ``reply`` by the prompt's kind."""

    model_ref = {"path": "/fake.gguf", "sha256": "f" * 64}

    def __init__(self) -> None:
        self.calls: list[str] = []

    def reply(self, messages: list[dict], max_tokens: int = 8) -> str:
        user = messages[-1]["content"]
        kind = "query" if user.startswith("Knowledge used") else "rag" if user.startswith("Reference passages") else "judge"
        self.calls.append(kind)
        if kind == "query":
            return "None" if "think" in user else "Which test monitors warfarin?"
        return "The INR." if kind == "rag" else "True"


def test_the_chain_mean_is_over_all_steps(demo_db):
    steps = [{"text": "Let us think step by step."}, {"text": "Warfarin therapy is monitored with the INR."},
             {"text": "Heparin is monitored with the aPTT.", "knowledge": ""}]
    model = FakeModel()
    out = K.score_chain_ki(demo_db, "clinical", model, steps, "Which test?", k=12, mode=ki_rules.PIPELINE)
    assert out["ki_mode"] == ki_rules.PIPELINE and out["ki_mean"] == 1.0 and out["n_applicable"] == 1
    assert model.calls == ["query", "query", "rag", "judge"]  # the empty knowledge asks nothing
    judged = out["steps"][1]
    assert judged["rag_answer"] == "The INR." and judged["judge_reply"] == "True" and 1 <= len(judged["evidence"]) <= 12
    with pytest.raises(ValueError, match="one chain at a time"):
        K.chains_ki(demo_db, "clinical", [(steps, None)], lambda prompts: [], mode=ki_rules.PIPELINE)


def _kiig(data_dir: Path, *argv) -> subprocess.CompletedProcess:
    env = {**os.environ, "KIIG_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "kiig_desktop", *map(str, argv)], capture_output=True, text=True,
                          env=env, timeout=900, cwd=ROOT)


@pytest.mark.slow
def test_the_pipeline_end_to_end_on_the_embedded_model(tmp_path):
    db, data = tmp_path / "s.kiig", tmp_path / "data"
    added = _kiig(data, "corpus", "add", "--db", db, "--name", "clinical", resource_path("corpus", "clinical_facts.jsonl"))
    assert added.returncode == 0, added.stderr
    chain = {"id": "c1", "question": "Which test monitors warfarin therapy?",
             "steps": ["Warfarin therapy is monitored with the INR.", "Heparin is monitored with the aPTT."]}
    (tmp_path / "in.jsonl").write_text(json.dumps(chain) + "\n")
    out = tmp_path / "out.jsonl"
    done = _kiig(data, "ki", "--model", "default", "--db", db, "--corpus", "clinical", "--input", tmp_path / "in.jsonl",
                 "--output", out, "--ki-mode", "reasoningeval-pipeline", "--rag-model", "default")
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    assert record["ki_mode"] == "reasoningeval-pipeline" and record["ki_k"] == 12
    assert record["build"]["rag_model"]["sha256"] == record["model"]["sha256"]
    for step in record["steps"]:
        assert isinstance(step["query_reply"], str)  # stage 1 always ran (the knowledge is not empty)
        if P.is_none_query(step["query_reply"]) or not step["query_reply"].strip():
            assert step["ki"] == 1.0 and step["rag_answer"] is None
            continue
        assert step["query"] == " ".join(step["query_reply"].split())
        with SessionStore.open(db, create=False, write=False) as store:  # stage 2: the query's 12 best passages
            assert [e["chunk_id"] for e in step["evidence"]] == [p.chunk_id for p in search(store.db, "clinical", step["query"], 12)]
        assert isinstance(step["rag_answer"], str) and isinstance(step["judge_reply"], str)  # stages 3 and 4
        assert step["ki"] == ki_rules.pipeline_match(step["judge_reply"])  # the rule on whatever came back
    assert record["ki_mean"] == sum(s["ki"] for s in record["steps"]) / 2
    with SessionStore.open(db, create=False, write=False) as store:
        run = next(r for r in store.list_runs() if r["kind"] == "ki")
        assert run["settings"]["mode"] == "reasoningeval-pipeline" and run["settings"]["rag_model"] == record["model"]["sha256"]
        (evaluation,) = store.load_ki(store.chains_for_run(run["id"])[0]["id"])
    assert evaluation["mode"] == "reasoningeval-pipeline"
    for kept, step in zip(evaluation["steps"], record["steps"], strict=True):
        for stage in ("query_reply", "query", "rag_answer", "judge_reply", "ki"):
            assert kept[stage] == step[stage]
        assert [e["chunk_id"] for e in kept["evidence"]] == [e["chunk_id"] for e in step["evidence"]]


def test_the_old_mode_name_is_read_back_renamed(tmp_path, capsys):
    with SessionStore.open(tmp_path / "s.kiig", write=True) as s:
        judge = s.ensure_model({"path": "/j.gguf", "sha256": "j" * 64})
        run, _ = s.find_or_create_run("ki", {"k": 12, "mode": "reasoningeval"}, {"judge": judge}, {})
        chain = s.save_chain(run, "c", {"id": "c", "steps": []}, ki={"judge_model_id": judge, "corpus": "x", "steps": [],
                                                                     "ki_mean": None, "mode": "reasoningeval", "k": 12})
        assert s.load_ki(chain)[0]["mode"] == "passages-true-false"
    from kiig_desktop.commands._common import ki_mode

    assert ki_mode("reasoningeval") == "passages-true-false"
    assert "now called 'passages-true-false'" in capsys.readouterr().err
