"""Knowledge Index: applicability, queries, judge prompt and probability, chains with a fake judge."""

from __future__ import annotations

import json
import math

import pytest

from kiig_desktop.errors import Cancelled, ContextOverflow, EngineError, InputError
from kiig_desktop.events import CancelToken, ItemDone, Progress
from kiig_desktop.knowledge import corpus
from kiig_desktop.knowledge import ki as K
from kiig_desktop.resources import resource_path
from tests.support.judge import STEPS, FakeJudge

CHAINS = resource_path("chains", "clinical_chains.jsonl")


def demo_chains() -> list[dict]:
    return [json.loads(line) for line in CHAINS.read_text(encoding="utf-8").splitlines() if line.strip()]


def full_question(chain: dict) -> str:
    return chain["question"] + "".join(f"\n{k}. {v}" for k, v in chain.get("options", {}).items())


# -- applicability -----------------------------------------------------------------------------

Q = ("A 58-year-old man with type 2 diabetes presents with chest pain. Which drug is first-line for type 2 diabetes?"
     "\nA. Metformin\nB. Insulin\nC. Gliclazide")

APPLICABILITY = [
    ("Let us think step by step.", False, K.REASON_PLANNING),
    ("Let's think about this carefully.", False, K.REASON_PLANNING),
    ("Let's consider each option carefully.", False, K.REASON_PLANNING),
    ("First, let's look at option A.", False, K.REASON_PLANNING),
    ("We need to determine the most likely diagnosis.", False, K.REASON_PLANNING),
    ("Let's determine which of these drugs is first-line.", False, K.REASON_PLANNING),
    ("Let's start by recalling how warfarin is monitored.", False, K.REASON_PLANNING),
    ("To answer this, we should review the options one by one.", False, K.REASON_PLANNING),
    ("Okay.", False, K.REASON_PLANNING),
    ("Hmm, wait, I made a mistake.", False, K.REASON_PLANNING),
    ("", False, K.REASON_EMPTY),
    ("   ", False, K.REASON_EMPTY),
    ("...", False, K.REASON_NO_CONTENT),
    ("What is the mechanism of warfarin?", False, K.REASON_QUESTION),
    ("Is it metformin? Or insulin?", False, K.REASON_QUESTION),
    ("So the answer is A.", False, K.REASON_ANSWER),
    ("Therefore, the answer is (A) metformin.", False, K.REASON_ANSWER),
    ("Answer: C", False, K.REASON_ANSWER),
    ("The correct option is B.", False, K.REASON_ANSWER),
    ("The patient is a 58-year-old man with type 2 diabetes and chest pain.", False, K.REASON_RESTATEMENT),
    ("This man has type 2 diabetes.", False, K.REASON_RESTATEMENT),
    ("2 + 2 = 4", False, K.REASON_CALCULATION),
    ("BMI = 70 / 1.75^2 = 22.9", False, K.REASON_CALCULATION),
    ("Metformin is the first-line drug for type 2 diabetes.", True, K.REASON_CLAIM),
    ("Recall that ACE inhibitors cause a dry cough.", True, K.REASON_CLAIM),
    ("We know that insulin causes weight gain.", True, K.REASON_CLAIM),
    ("Let's consider that gliclazide can cause hypoglycaemia.", True, K.REASON_CLAIM),
    ("The answer is A because metformin lowers hepatic glucose output.", True, K.REASON_CLAIM),
    ("We should give IV calcium gluconate to stabilise the myocardium.", True, K.REASON_CLAIM),
    ("Warfarin inhibits vitamin K epoxide reductase.", True, K.REASON_CLAIM),
    ("Chest pain in a diabetic may be a silent myocardial infarction.", True, K.REASON_CLAIM),
    ("The dose is 5 mg/kg.", True, K.REASON_CLAIM),
]


@pytest.mark.parametrize(("step", "applicable", "reason"), APPLICABILITY)
def test_applicability_table(step, applicable, reason):
    assert K.is_applicable(step, Q) == (applicable, reason)


def test_restatement_needs_the_question():
    assert K.is_applicable("The patient is a 58-year-old man with type 2 diabetes and chest pain.") == (True, K.REASON_CLAIM)
    # option wording does not make a claim a restatement: the check uses the question stem only
    assert K.is_applicable("Gliclazide causes hypoglycaemia.", Q)[0]


def test_demo_chain_labels_match_applicability():
    for chain in demo_chains():
        for step, label in zip(chain["steps"], chain["step_labels"], strict=True):
            applicable, reason = K.is_applicable(step, full_question(chain))
            assert applicable == (label["expected"] != "not_applicable"), (chain["id"], step, reason)


def test_step_claim_with_knowledge():
    assert K.step_claim("Let us think.", "Metformin lowers hepatic glucose output.") == (
        True, K.REASON_CLAIM, "Metformin lowers hepatic glucose output.")
    assert K.step_claim("Metformin is first-line.", "none")[:2] == (False, K.REASON_NO_KNOWLEDGE)
    assert K.step_claim("Metformin is first-line.", "")[:2] == (False, K.REASON_NO_KNOWLEDGE)
    assert K.step_claim("Recall that statins block HMG-CoA reductase.")[2] == "statins block HMG-CoA reductase."


# -- queries -----------------------------------------------------------------------------------


def test_build_query():
    assert K.build_query("Recall that ACE inhibitors cause a dry cough.") == "ace inhibitors cause dry cough"
    assert K.build_query("Let us think.", knowledge="Warfarin is monitored with the INR.") == "warfarin monitored inr"
    short = K.build_query("It is the drug of choice.", question=Q)
    assert short.startswith("drug ") and "diabetes" in short and "metformin" not in short  # options left out
    assert K.build_query("Metformin lowers hepatic glucose output.", question=Q) == "metformin lowers hepatic glucose output"


def test_demo_chain_sources_retrieved_in_top_3(demo_db):
    for chain in demo_chains():
        question = full_question(chain)
        for step, label in zip(chain["steps"], chain["step_labels"], strict=True):
            if label["expected"] == "not_applicable":
                continue
            hits = corpus.search(demo_db, "clinical", K.build_query(step, None, question), k=3)
            assert label["source"] in [h.source for h in hits], (chain["id"], step, [h.source for h in hits])


# -- judge prompt and probability --------------------------------------------------------------


def passages(n: int, size: int) -> list[corpus.Passage]:
    return [corpus.Passage(source=f"s{i}", chunk=0, text=("word " * (size // 5)).strip(), score=1.0, chunk_id=i,
                           title=f"Title {i}") for i in range(n)]


def test_judge_prompt_layout():
    msgs = K.build_judge_messages("Warfarin is monitored with the INR.", passages(2, 100))
    assert [m["role"] for m in msgs] == ["system", "user"]
    user = msgs[1]["content"]
    assert "[1] (Title 0) word" in user and "[2] (Title 1) word" in user
    assert "\n\nClaim: Warfarin is monitored with the INR.\n\n" in user
    assert user.rstrip().endswith("Reply with one word, Yes or No.")
    assert "Yes" in msgs[0]["content"] and "No" in msgs[0]["content"]


@pytest.mark.parametrize("budget", [1500, 3000, 6000, 12000])
def test_judge_prompt_stays_within_budget(budget):
    long_claim = "Claim words " * 400
    for plist in (passages(3, 5000), passages(5, 300), passages(1, 20000), passages(3, 50)):
        msgs = K.build_judge_messages(long_claim, plist, max_prompt_chars=budget)
        assert sum(len(m["content"]) for m in msgs) <= budget
        assert "[1]" in msgs[1]["content"]  # at least the best passage is always shown


def test_judge_prompt_drops_passages_that_would_be_too_short():
    msgs = K.build_judge_messages("x", passages(10, 2000), max_prompt_chars=1500)
    assert "[1]" in msgs[1]["content"] and "[10]" not in msgs[1]["content"]
    short_ones = K.build_judge_messages("x", passages(3, 100), max_prompt_chars=6000)[1]["content"]
    assert "…" not in short_ones  # short passages are shown whole


def test_yes_no_probability_basic():
    ki, p_yes, p_no = K.yes_no_probability({"Yes": math.log(0.6), "No": math.log(0.2)})
    assert ki == pytest.approx(0.75) and p_yes == pytest.approx(0.6) and p_no == pytest.approx(0.2)


def test_yes_no_probability_dedupes_same_first_token():
    # "Yes" and "YES" share a first token (same log-probability): counted once
    yes = ("Yes", "YES", " Yes")
    lp = {"Yes": math.log(0.5), "YES": math.log(0.5), " Yes": math.log(0.1), "No": math.log(0.2)}
    ki, p_yes, _ = K.yes_no_probability(lp, yes=yes)
    assert p_yes == pytest.approx(0.6) and ki == pytest.approx(0.75)
    # with token ids from the judge, grouping is by id even when values differ by rounding
    ids = {"Yes": 1, "YES": 1, " Yes": 2, "No": 3}
    lp2 = {"Yes": math.log(0.5), "YES": math.log(0.5) + 1e-12, " Yes": math.log(0.1), "No": math.log(0.2)}
    assert K.yes_no_probability(lp2, yes=yes, token_ids=ids)[1] == pytest.approx(0.6)
    assert K.yes_no_probability(lp2, yes=yes)[1] == pytest.approx(1.1)  # without ids the rounding hides it


def test_yes_no_probability_ambiguous_and_empty():
    # " Yes" and " No" both tokenised as " " + word: the shared first token says nothing
    lp = {" Yes": math.log(0.7), " No": math.log(0.7), "Yes": math.log(0.1), "No": math.log(0.3)}
    assert K.yes_no_probability(lp) == (pytest.approx(0.25), pytest.approx(0.1), pytest.approx(0.3))
    assert K.yes_no_probability({}) == (None, 0.0, 0.0)
    assert K.yes_no_probability({"Yes": -math.inf, "No": float("nan")}) == (None, 0.0, 0.0)
    assert K.yes_no_probability({"Yes": -math.inf, "No": math.log(0.3)})[0] == 0.0


# -- chains ------------------------------------------------------------------------------------

def test_score_chain_with_fake_judge(demo_db):
    judge = FakeJudge()
    out = K.score_chain_ki(demo_db, "clinical", judge, STEPS, "Which test monitors warfarin?", k=3)
    s = out["steps"]
    assert [x["applicable"] for x in s] == [False, True, True, False]
    assert [x["index"] for x in s] == [1, 2, 3, 4]
    assert s[0]["ki"] is None and s[0]["evidence"] == [] and s[0]["reason"] == K.REASON_PLANNING
    assert s[3]["ki"] is None and s[3]["judge_p_yes"] is None
    assert len(judge.calls) == 2  # not-applicable steps never reach the judge
    for step in s[1:3]:
        assert 0.0 <= step["ki"] <= 1.0
        assert 1 <= len(step["evidence"]) <= 3
        assert step["evidence"][0]["source"] == "cf-warfarin"
        assert set(step["evidence"][0]) == {"source", "chunk", "score", "chunk_id", "file", "title", "where"}
        assert step["evidence"][0]["where"].startswith("clinical_facts.jsonl > cf-warfarin")
        assert step["judge_p_yes"] > 0 and step["judge_p_no"] > 0
    # "Yes"+" Yes"+"yes" against the same for No
    assert s[1]["ki"] == pytest.approx(0.9) and s[2]["ki"] == pytest.approx(0.1)
    assert s[1]["judge_p_yes"] == pytest.approx(0.9 * 0.75)
    assert out["ki_mean"] == pytest.approx(0.5)  # mean over the two applicable steps only
    assert out["n_applicable"] == 2 and out["n_judged"] == 2


def test_iter_chain_ki_reports_each_step_and_returns_the_same_result(demo_db):
    gen = K.iter_chain_ki(demo_db, "clinical", FakeJudge(), STEPS, "Which test monitors warfarin?", k=3)
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            out = stop.value
            break
    assert [(e.done, e.total) for e in events] == [(i, len(STEPS)) for i in range(len(STEPS) + 1)]
    assert all(isinstance(e, Progress) for e in events)
    assert out == K.score_chain_ki(demo_db, "clinical", FakeJudge(), STEPS, "Which test monitors warfarin?", k=3)
    cancel = CancelToken()
    gen = K.iter_chain_ki(demo_db, "clinical", FakeJudge(), STEPS, cancel=cancel)
    next(gen)
    cancel.cancel()
    with pytest.raises(Cancelled):
        next(gen)


def test_chain_without_applicable_steps_has_no_mean(demo_db):
    judge = FakeJudge()
    out = K.score_chain_ki(demo_db, "clinical", judge, [STEPS[0], STEPS[3]])
    assert out["ki_mean"] is None and not judge.calls


def test_no_evidence_is_not_a_verdict(demo_db):
    judge = FakeJudge()
    out = K.score_chain_ki(demo_db, "clinical", judge, [{"text": "Quasars emit zxqv radiation."}])
    step = out["steps"][0]
    assert step["applicable"] and step["ki"] is None and step["reason"] == K.REASON_NO_EVIDENCE
    assert step["index"] == 1 and out["ki_mean"] is None and not judge.calls


def test_knowledge_field_drives_query_and_claim(demo_db):
    judge = FakeJudge()
    steps = [{"index": 1, "text": "Let us think.", "knowledge": "Rifampicin turns urine orange-red."},
             {"index": 2, "text": "Rifampicin turns urine orange-red.", "knowledge": "none"}]
    out = K.score_chain_ki(demo_db, "clinical", judge, steps)
    assert out["steps"][0]["applicable"] and out["steps"][0]["evidence"][0]["source"] == "cf-rifampicin"
    assert FakeJudge.claim_of(judge.calls[0]) == "Rifampicin turns urine orange-red."
    assert out["steps"][1]["applicable"] is False and out["steps"][1]["reason"] == K.REASON_NO_KNOWLEDGE


def test_context_overflow_is_one_clear_error_not_a_shorter_prompt(demo_db):
    judge = FakeJudge(overflow_above=1000)
    with pytest.raises(ContextOverflow, match="judge prompt does not fit the judge's context"):
        K.score_chain_ki(demo_db, "clinical", judge, [STEPS[1]], max_prompt_chars=6000)
    assert len(judge.calls) == 1  # never asked again with a truncated prompt


def test_unknown_corpus_fails_before_judging(demo_db):
    judge = FakeJudge()
    with pytest.raises(InputError, match="no corpus named 'nope'"):
        K.score_chain_ki(demo_db, "nope", judge, STEPS)
    assert not judge.calls


def test_cancel_between_steps(demo_db):
    token = CancelToken()
    judge = FakeJudge(rule=lambda claim, msgs: (token.cancel(), 0.5)[1])
    with pytest.raises(Cancelled):
        K.score_chain_ki(demo_db, "clinical", judge, STEPS, cancel=token)
    assert len(judge.calls) == 1


def test_parse_ki_item():
    score_line = {"id": "q1", "mode": "answer", "steps": [{"index": 1, "text": "A.", "answer_nll": 1.0},
                                                          {"index": 2, "text": "B.", "knowledge": "k"}]}
    item = K.parse_ki_item(score_line, 1)
    assert item == {"id": "q1", "question": None, "steps": [{"index": 1, "text": "A."},
                                                            {"index": 2, "text": "B.", "knowledge": "k"}]}
    item = K.parse_ki_item({"id": 7, "question": "Q?", "options": {"A": "x", "B": "y"}, "steps": ["s1", "s2"]}, 3)
    assert item["id"] == "7" and item["question"] == "Q?\nA. x\nB. y" and item["steps"][1] == {"index": 2, "text": "s2"}
    failed = K.parse_ki_item({"id": "q2", "steps": [], "error": "longer than the context"}, 2)
    assert failed["error"] == "no steps to check (upstream error: longer than the context)"
    assert K.parse_ki_item({"question": "Q"}, 9)["id"] == "9"
    for bad, msg in [([], "JSON object"), ({"steps": "text"}, "must be a list"), ({"steps": [3]}, "step 1"),
                     ({"id": True, "steps": []}, "id"), ({"question": 5, "steps": ["a"]}, "question")]:
        with pytest.raises(InputError, match=msg):
            K.parse_ki_item(bad, 4)


def test_ki_items_events_and_per_item_errors(demo_db):
    judge = FakeJudge(fail_when="platelet")
    items = [K.parse_ki_item({"id": "ok", "steps": [s["text"] for s in STEPS[:2]]}, 1),
             K.parse_ki_item({"id": "crash", "steps": [s["text"] for s in STEPS]}, 2),
             K.parse_ki_item({"id": "upstream", "steps": [], "error": "boom"}, 3),
             K.parse_ki_item({"id": "after", "steps": [STEPS[1]["text"]]}, 4)]
    events = list(K.ki_items(demo_db, "clinical", judge, items, k=2))
    done = [e for e in events if isinstance(e, ItemDone)]
    progress = [e for e in events if isinstance(e, Progress)]
    assert [d.index for d in done] == [0, 1, 2, 3]
    assert progress[0].done == 0 and progress[-1].done == progress[-1].total == 4
    ok, crash, upstream, after = (d.result for d in done)
    assert ok["id"] == "ok" and ok["ki_mean"] == pytest.approx(0.9) and "error" not in ok
    assert ok["model"] == FakeJudge.model_ref and len(ok["steps"][1]["evidence"]) == 2
    assert crash["error"] == "the judge worker died" and crash["ki_mean"] is None
    assert upstream["error"].startswith("no steps to check")
    assert after["ki_mean"] == pytest.approx(0.9)  # the batch went on after the failure


def test_ki_items_cancel(demo_db):
    token = CancelToken()
    items = [K.parse_ki_item({"id": str(i), "steps": [STEPS[1]["text"]]}, i) for i in range(5)]
    gen = K.ki_items(demo_db, "clinical", FakeJudge(), items, cancel=token)
    first = [next(gen) for _ in range(3)]  # progress, item 0, progress
    assert isinstance(first[1], ItemDone)
    token.cancel()
    with pytest.raises(Cancelled):
        next(gen)


def test_engine_errors_propagate_from_score_chain(demo_db):
    class Broken(FakeJudge):
        def next_token_logprobs(self, messages, candidates):
            raise EngineError("load failed")

    with pytest.raises(EngineError):
        K.score_chain_ki(demo_db, "clinical", Broken(), STEPS)


def test_demo_chains_end_to_end_with_label_oracle(demo_db):
    """With a judge that knows the labels, KI separates the true steps from the false ones."""
    truth = {}
    for chain in demo_chains():
        for step, label in zip(chain["steps"], chain["step_labels"], strict=True):
            truth[K.step_claim(step)[2]] = label["expected"]
    judge = FakeJudge(rule=lambda claim, msgs: 0.95 if truth[claim] == "supported" else 0.05)
    for chain in demo_chains():
        out = K.score_chain_ki(demo_db, "clinical", judge, [{"text": s} for s in chain["steps"]], full_question(chain))
        for step, label in zip(out["steps"], chain["step_labels"], strict=True):
            if label["expected"] == "not_applicable":
                assert step["ki"] is None and not step["applicable"]
            else:
                assert (step["ki"] > 0.5) == (label["expected"] == "supported")
        applicable = [s["ki"] for s in out["steps"] if s["applicable"]]
        assert out["ki_mean"] == pytest.approx(sum(applicable) / len(applicable))
