"""``kiig judge-check``: how well a judge model separates supported from unsupported claims.

Runs the judge on the bundled labelled claims against the demo corpus (as KI judges a step) and
reports AUROC and accuracy with 95% bootstrap intervals. The result is kept in the data folder per
model file (SHA-256) and KI method; running the command again reads it back without loading the
model (``--force`` checks again). Every KI view shows it next to the judge's numbers.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

from ..errors import Cancelled, InputError
from ..events import CancelToken, Progress
from ._common import print_json
from ._progress import ProgressLine


def register(sub) -> None:
    p = sub.add_parser("judge-check", help="validate a KI judge model on labelled claims (AUROC, accuracy, 95%% intervals)")
    p.add_argument("--model", required=True, help="judge model: a .gguf path, a model id/name from `kiig models`, or `default`")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--k", type=int, default=3, help="passages retrieved per claim (default 3, as KI uses)")
    p.add_argument("--claims", default=None, help="a JSONL file of labelled claims instead of the bundled set")
    p.add_argument("--from-reviews", metavar="SESSION", default=None,
                   help="use the steps clinicians reviewed in this session file as the claims (label: the knowledge verdict)")
    p.add_argument("--run", type=int, default=None, help="with --from-reviews: only the reviews of this run")
    p.add_argument("--corpus", default=None,
                   help="with --from-reviews: retrieve from this corpus of the session (as its KI did) instead of the demo corpus")
    p.add_argument("--force", action="store_true", help="check again even when a stored result exists")
    p.set_defaults(func=run)


def _line(name: str, r: dict) -> str:
    (alo, ahi), (clo, chi) = r["auroc_ci"], r["accuracy_ci"]
    return (f"{name}: AUROC {r['auroc']:.3f} (95% CI {alo:.3f}-{ahi:.3f}), accuracy {r['accuracy']:.1%} "
            f"(95% CI {clo:.1%}-{chi:.1%}), {r['n']} claims")


def run(args: argparse.Namespace) -> int:
    from ..engine.models import resolve_model
    from ..runs import judge_check as jc
    from ..store import judge_validation as validation

    if not 1 <= args.k <= 20:
        raise InputError(f"--k must be between 1 and 20, got {args.k}")
    if args.from_reviews:
        claims, claims_sha = _review_claims(args)
    else:
        claims = jc.load_claims(args.claims)
        claims_sha = jc.claims_fingerprint(args.claims)
    info = resolve_model(args.model)
    stored = None if args.force else jc.stored_result(info.sha256(), claims_sha)
    if stored is not None and stored.get("k") == args.k and stored.get("corpus", "demo") == (args.corpus or "demo"):
        result, cached = stored, True
    else:
        validation.require_room(len(claims))  # a full disk is said before the judge runs, not after
        result, cached = _check(args, info, claims, claims_sha, jc), False
        if args.from_reviews:
            result.update({"source": "reviews", "session": str(Path(args.from_reviews).expanduser().absolute()), "run": args.run})
        jc.store_result(result)
    if args.json:
        out = {k: v for k, v in result.items() if k != "claims"}
        print_json({**out, "cached": cached, "warning": validation.is_weak(result)})
        return 0
    where = " (the reviewed steps)" if args.from_reviews else ""
    print(_line(f"judge {info.name}{where}", result) + (" (stored result)" if cached else ""))
    for kind, r in sorted((result.get("by_kind") or {}).items()):
        print("  " + _line(kind, r))
    print(validation.note(result, args.model))
    return 0


def _review_claims(args: argparse.Namespace) -> tuple[list[dict], str]:
    """The reviewed steps of a session as labelled claims, and their fingerprint (the claims' hash)."""
    from ..store import SessionStore, reviews
    from ..store.codec import canonical_json, sha256_text

    if args.claims:
        raise InputError("give either --claims or --from-reviews, not both")
    if args.corpus and not args.from_reviews:
        raise InputError("--corpus goes with --from-reviews (the bundled claims are written against the demo corpus)")
    with SessionStore.open(args.from_reviews, create=False, write=False) as store:
        if args.run is not None:
            store.get_run(args.run)
        claims = reviews.review_claims(store, args.run)
    if {c["label"] for c in claims} != {True, False}:
        raise InputError(f"{args.from_reviews}: the reviews need steps judged correct and steps judged incorrect "
                         f"(found {sum(c['label'] for c in claims)} correct, {sum(not c['label'] for c in claims)} incorrect)")
    return claims, sha256_text(canonical_json({"claims": claims, "corpus": args.corpus or "demo"}))


def _check(args, info, claims: list[dict], claims_sha: str, jc) -> dict:

    cancel = CancelToken()
    with ExitStack() as stack:
        corpus = None
        if args.corpus:  # the reviewed steps checked against the session's own corpus, as its KI was
            from ..runs.ki import check_corpus
            from ..store import SessionStore

            store = stack.enter_context(SessionStore.open(args.from_reviews, create=False, write=False))
            check_corpus(store, args.corpus)
            corpus = (store.db, args.corpus)
        return _judge(info, claims, claims_sha, args.k, corpus, cancel, jc)


def _judge(info, claims: list[dict], claims_sha: str, k: int, corpus, cancel: CancelToken, jc) -> dict:
    from ..knowledge.judge import open_judge

    line = ProgressLine("judge-check")
    with open_judge(info.path) as judge:
        events = jc.iter_judge_check(judge, claims, k=k, claims_sha256=claims_sha, cancel=cancel, corpus=corpus)
        try:
            while True:
                event = next(events)
                if isinstance(event, Progress):
                    line.update(event, force=event.done == event.total)
        except StopIteration as stop:
            return stop.value
        except (Cancelled, KeyboardInterrupt):
            print("kiig judge-check: cancelled; nothing stored", file=sys.stderr)
            raise
        finally:
            line.close()
