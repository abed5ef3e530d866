"""KI modes: the probability rule (default) and ReasoningEval's True/False rule, with a scripted judge."""

from __future__ import annotations

import pytest

from kiig_desktop.errors import ContextOverflow
from kiig_desktop.knowledge import ki as K
from kiig_desktop.knowledge import ki_rules
from kiig_desktop.resources import resource_path
from tests.support.judge import STEPS, FakeJudge
from tests.support.paths import DATA


class TrueFalseJudge(FakeJudge):
    """Replies from a script, in order (greedy True/False answers); records each prompt."""

    def __init__(self, replies: list[str], overflow_above: int | None = None) -> None:
        super().__init__(overflow_above=overflow_above)
        self.replies = list(replies)
        self.max_tokens: list[int] = []

    def reply(self, messages, max_tokens):
        prompt = "".join(m["content"] for m in messages)
        self.calls.append(messages)
        if self.overflow_above is not None and len(prompt) > self.overflow_above:
            raise ContextOverflow("too long")
        self.max_tokens.append(max_tokens)
        return self.replies.pop(0) if self.replies else "True"


@pytest.mark.parametrize("reply, score", [("True", 1.0), (" True\n", 1.0), ("True\nBecause ...", 1.0),
                                          ("True.", 0.0), ("true", 0.0), ("False", 0.0), ("", 0.0), ("Yes", 0.0)])
def test_only_an_exact_true_scores_one(reply, score):
    assert ki_rules.true_false_score(reply) == score


def test_reasoningeval_mode_scores_all_steps_and_counts_no_query_as_one(demo_db):
    judge = TrueFalseJudge(["True", "False"])
    out = K.score_chain_ki(demo_db, "clinical", judge, STEPS, "Which test monitors warfarin?", k=12, mode="passages-true-false")
    s = out["steps"]
    assert [x["applicable"] for x in s] == [False, True, True, False]
    assert [x["ki"] for x in s] == [1.0, 1.0, 0.0, 1.0]  # planning and answer lines: a "None" query, 1.0
    assert ki_rules.REASON_NO_QUERY_SCORED in s[0]["reason"]
    assert s[1]["judge_reply"] == "True" and s[2]["judge_reply"] == "False"
    assert out["ki_mean"] == pytest.approx(3 / 4)  # the mean over ALL steps
    assert out["ki_mode"] == "passages-true-false" and out["ki_k"] == 12
    assert len(judge.calls) == 2 and judge.max_tokens == [ki_rules.TRUE_FALSE_MAX_TOKENS] * 2
    prompt = judge.calls[0][-1]["content"]
    assert "True or False" in prompt and "Yes or No" not in prompt
    assert judge.calls[0][0]["content"] == ki_rules.SYSTEM_TRUE_FALSE
    assert len(s[1]["evidence"]) > 3  # k = 12 passages retrieved, not 3


def test_probability_mode_is_unchanged_and_leaves_na_steps_out(demo_db):
    out = K.score_chain_ki(demo_db, "clinical", FakeJudge(), STEPS, "Which test monitors warfarin?", k=3)
    assert out["ki_mode"] == "probability" and out["ki_k"] == 3
    assert [x["ki"] is None for x in out["steps"]] == [True, False, False, True]
    assert out["ki_mean"] == pytest.approx(0.5)


def test_reasoningeval_asks_the_judge_even_without_evidence(demo_db):
    judge = TrueFalseJudge(["False"])
    out = K.score_chain_ki(demo_db, "clinical", judge, [{"text": "Quasars emit zxqv radiation."}], mode="passages-true-false")
    assert out["steps"][0]["ki"] == 0.0 and out["ki_mean"] == 0.0 and len(judge.calls) == 1
    assert "(none)" in judge.calls[0][-1]["content"]


def test_reasoningeval_failed_query_scores_one(demo_db):
    judge = TrueFalseJudge([])
    steps = [{"index": 1, "text": "Let us think.", "knowledge": "Let us consider it again now."}]
    out = K.score_chain_ki(demo_db, "clinical", judge, steps, mode="passages-true-false")
    assert out["steps"][0]["ki"] == 1.0 and not judge.calls


def test_reasoningeval_overflowing_prompt_is_one_clear_error(demo_db):
    judge = TrueFalseJudge(["True"], overflow_above=2500)
    with pytest.raises(ContextOverflow, match="judge prompt does not fit"):
        K.score_chain_ki(demo_db, "clinical", judge, [STEPS[1]], k=12, mode="passages-true-false")
    assert len(judge.calls) == 1


def test_unknown_mode_and_settings():
    with pytest.raises(ValueError, match="unknown KI mode"):
        ki_rules.check_mode("binary")
    assert ki_rules.settings("probability", None) == {"k": 3, "method": ki_rules.KI_METHOD_VERSION}
    assert ki_rules.settings("passages-true-false", None) == {"k": 12, "method": ki_rules.KI_METHOD_VERSION, "mode": "passages-true-false"}
    assert ki_rules.chain_mean([], "passages-true-false") is None


def test_the_session_stores_the_mode_and_a_v1_session_reads_as_probability(tmp_path):
    import shutil

    from kiig_desktop.store import SessionStore
    from tests.support.store_support import SHA_J, make_ki_steps, make_record, model_info

    with SessionStore.open(tmp_path / "s.kiig") as s:
        judge = s.ensure_model(model_info(SHA_J, "/models/judge.gguf"))
        run, _ = s.find_or_create_run("ki", {"k": 12, "mode": "passages-true-false"}, {"judge": judge}, {})
        cid = s.save_chain(run, "c", make_record(0, n_steps=3, n_tokens=8),
                           ki={"judge_model_id": judge, "corpus": "demo", "steps": make_ki_steps(0, 3), "ki_mean": 0.5,
                               "mode": "passages-true-false", "k": 12, "method": 1, "build": {"backend": "CPU", "n_batch": 512}})
        [ev] = s.load_ki(cid)
        assert (ev["mode"], ev["k"], ev["method"]) == ("passages-true-false", 12, 1)
        assert ev["build"] == {"backend": "CPU", "n_batch": 512}
    old = tmp_path / "v1.kiig"
    shutil.copyfile(DATA / "session_v1.kiig", old)
    with SessionStore.open(old) as s:
        [run] = s.list_runs()
        [ev] = s.load_ki(s.chain_id(run["id"], "q0"))
        assert (ev["mode"], ev["k"], ev["method"], ev["build"]) == ("probability", None, 1, None)


def test_kiig_ki_modes_are_separate_runs_and_lines_say_the_judge_is_not_validated(tmp_path, capsys, monkeypatch):
    import json
    import sys
    import types

    from kiig_desktop import cli
    from kiig_desktop.store import SessionStore
    from tests.support.cli import kiig_main as kiig
    from tests.support.cli import read_jsonl
    from tests.support.judge import Opener

    monkeypatch.setattr(cli, "COMMAND_MODULES", ["corpus", "ki"])
    monkeypatch.setitem(sys.modules, "kiig_desktop.knowledge.judge", types.SimpleNamespace(open_judge=Opener(TrueFalseJudge([]))))
    db = tmp_path / "s.kiig"
    assert cli.main(["corpus", "add", "--db", str(db), "--name", "clinical", str(resource_path("corpus", "clinical_facts.jsonl"))]) == 0
    chains = resource_path("chains", "clinical_chains.jsonl")
    code, _, err = kiig(capsys, "ki", "--model", "j.gguf", "--db", db, "--corpus", "clinical", "--input", chains,
                        "--output", tmp_path / "re.jsonl", "--ki-mode", "passages-true-false")
    assert code == 0, err
    assert "not validated" in err and "kiig judge-check --model j.gguf" in err
    lines = read_jsonl(tmp_path / "re.jsonl")
    for rec in lines:
        assert rec["ki_mode"] == "passages-true-false" and rec["ki_k"] == 12
        assert rec["ki_mean"] == 1.0  # the scripted judge always says True; N/A steps count 1.0
        assert rec["judge_validation"]["validated"] is False and rec["judge_validation"]["warning"] is True
    code, _, err = kiig(capsys, "ki", "--model", "j.gguf", "--db", db, "--corpus", "clinical", "--input", chains,
                        "--output", tmp_path / "p.jsonl")
    assert code == 0 and "already done" not in err  # the other mode never resumes this run
    assert {r["ki_mode"] for r in read_jsonl(tmp_path / "p.jsonl")} == {"probability"}
    with SessionStore.open(db, create=False, write=False) as store:
        runs = [r for r in store.list_runs() if r["kind"] == "ki"]
        assert [(r["settings"].get("mode", "probability"), r["settings"]["k"]) for r in runs] == [("passages-true-false", 12), ("probability", 3)]
        first = store.chains_for_run(runs[0]["id"])[0]["id"]
        assert store.load_ki(first)[0]["mode"] == "passages-true-false" and store.load_ki(first)[0]["k"] == 12
    code, _, err = kiig(capsys, "ki", "--model", "j.gguf", "--db", db, "--corpus", "clinical", "--input", chains,
                        "--output", tmp_path / "re2.jsonl", "--ki-mode", "passages-true-false")
    assert "already done" in err and json.loads((tmp_path / "re2.jsonl").read_text().splitlines()[0])["ki_mode"] == "passages-true-false"


@pytest.mark.slow
def test_reasoningeval_mode_on_the_embedded_model(demo_db):
    """The real engine's greedy True/False reply goes through the rule: each judged step scores exactly 0 or 1."""
    from kiig_desktop.knowledge.judge import open_judge

    with open_judge("default") as judge:
        reply = judge.reply([{"role": "user", "content": "Reply with one word, True or False: water is wet."}], 4)
        assert isinstance(reply, str)
        out = K.score_chain_ki(demo_db, "clinical", judge, STEPS, "Which test monitors warfarin?", k=2, mode="passages-true-false")
    judged = [s for s in out["steps"] if s["applicable"]]
    assert judged and all(s["ki"] in (0.0, 1.0) and isinstance(s["judge_reply"], str) for s in judged)
    assert all(s["ki"] == (1.0 if s["judge_reply"].strip().splitlines()[:1] == ["True"] else 0.0) for s in judged)
    assert out["ki_mean"] == sum(s["ki"] for s in out["steps"]) / len(STEPS)
