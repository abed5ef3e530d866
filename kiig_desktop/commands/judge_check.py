"""``kiig judge-check``: how well a judge model separates supported from unsupported claims.

Runs the judge on the bundled (or the user's, ``--claims``) labelled claims against the demo corpus,
or the user's own corpus (``--corpus NAME --db FILE``), as KI judges a step, and
reports AUROC and accuracy with 95% bootstrap intervals. The result is kept in the data folder per
model file (SHA-256) and KI method; running the command again reads it back without loading the
model (``--force`` checks again). Every KI view shows it next to the judge's numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from ..errors import Cancelled, InputError, terminal_safe
from ..events import CancelToken, Progress
from ._common import add_engine_args, engine_options, print_engine_warnings, print_json
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
    p.add_argument("--force", action="store_true", help="check again even when a stored result exists")
    p.add_argument("--corpus", default=None, help="check against this corpus of the session --db (your domain) instead of the "
                                                   "demo corpus; with --from-reviews the reviewed session is the default --db")
    p.add_argument("--db", default=None, help="the session file holding --corpus")
    p.add_argument("--calibrate", action="store_true",
                   help="also fit a Platt calibration of p(yes) on these claims (k-fold cross-validated; stored with "
                        "the validation; `kiig ki --calibrated` uses it); a stored check is calibrated without the model")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds for --calibrate (default 5)")
    add_engine_args(p)  # the judge's load options, as the scorer's
    p.set_defaults(func=run)


def _same_load(stored: dict, options) -> bool:
    """Whether a stored check was made with the load options that change a judge's answers (chat
    template; GPU or CPU); the context size and threads do not."""
    used = stored.get("engine_options") or {}
    return (used.get("chat_template") == options.chat_template
            and bool(used.get("n_gpu_layers") or 0) == bool(options.n_gpu_layers))


def _line(name: str, r: dict) -> str:
    (alo, ahi), (clo, chi) = r["auroc_ci"], r["accuracy_ci"]
    return (f"{name}: AUROC {r['auroc']:.3f} (95% CI {alo:.3f}-{ahi:.3f}), accuracy {r['accuracy']:.1%} "
            f"(95% CI {clo:.1%}-{chi:.1%}), {r['n']} claims")


def run(args: argparse.Namespace) -> int:
    from ..engine.models import resolve_model
    from ..knowledge.corpus import corpus_fingerprint
    from ..runs import judge_check as jc
    from ..store import judge_validation as validation

    if not 1 <= args.k <= 20:
        raise InputError(f"--k must be between 1 and 20, got {args.k}")
    if not 2 <= args.folds <= 20:
        raise InputError(f"--folds must be between 2 and 20, got {args.folds}")
    db = args.db or (args.from_reviews if args.corpus else None)
    if (args.corpus is None) != (db is None):
        raise InputError("--corpus and --db go together: the corpus lives in a session file")
    options = engine_options(args)
    if args.from_reviews:
        claims, claims_sha = _review_claims(args)
    else:
        claims = jc.load_claims(args.claims)
        claims_sha = jc.claims_fingerprint(args.claims)
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(_open_corpus(db, args.corpus)) if db else None
        fingerprint = corpus_fingerprint(store.db, args.corpus) if store is not None else None
        info = resolve_model(args.model)
        stored = None if args.force else jc.stored_result(info.sha256(), jc.check_set_id(claims_sha, fingerprint))
        if stored is not None and stored.get("k") == args.k and _same_load(stored, options):
            result, cached = stored, True
        else:
            validation.require_room(len(claims))  # a full disk is said before the judge runs, not after
            result, cached = _check(args, info, claims, claims_sha, jc, options, store), False
            if args.from_reviews:
                result.update({"source": "reviews", "session": str(Path(args.from_reviews).expanduser().absolute()),
                               "run": args.run})
            jc.store_result(result)
    if args.calibrate:
        jc.store_result(jc.add_calibration(result, args.folds))
    if args.json:
        out = {k: v for k, v in result.items() if k != "claims"}
        print_json({**out, "cached": cached, "warning": validation.is_weak(result)})
        return 0
    corpus = result.get("corpus") if isinstance(result.get("corpus"), dict) else {}
    against = "" if corpus.get("demo", True) else f" against corpus {corpus.get('name')!r}"
    where = " (the reviewed steps)" if args.from_reviews else ""
    # the judge's name comes from its file (or an Ollama manifest), the corpus name from a session:
    # control characters are shown, never sent to the terminal
    lines = [_line(f"judge {info.name}{where}{against}", result) + (" (stored result)" if cached else "")]
    lines += ["  " + _line(kind, r) for kind, r in sorted((result.get("by_kind") or {}).items())]
    lines.append(validation.note(result, args.model))
    if result.get("calibration"):
        lines.append(calibration_line(result["calibration"]))
    for line in lines:
        print(terminal_safe(line))
    return 0


def _review_claims(args: argparse.Namespace) -> tuple[list[dict], str]:
    """The reviewed steps of a session as labelled claims, and their fingerprint (the claims' hash)."""
    from ..store import SessionStore, reviews
    from ..store.codec import canonical_json, sha256_text

    if args.claims:
        raise InputError("give either --claims or --from-reviews, not both")
    with SessionStore.open(args.from_reviews, create=False, write=False) as store:
        if args.run is not None:
            store.get_run(args.run)
        claims = reviews.review_claims(store, args.run)
    if {c["label"] for c in claims} != {True, False}:
        raise InputError(f"{args.from_reviews}: the reviews need steps judged correct and steps judged incorrect "
                         f"(found {sum(c['label'] for c in claims)} correct, {sum(not c['label'] for c in claims)} incorrect)")
    return claims, sha256_text(canonical_json({"claims": claims}))


def calibration_line(c: dict) -> str:
    """The stored calibration in one line: the fit and its Brier score before and after (out of sample)."""
    return (f"calibration (Platt on log-odds, {c['folds']}-fold cross-validated): p = sigmoid({c['a']:.3f} * logit(p_yes) "
            f"{'+' if c['b'] >= 0 else '-'} {abs(c['b']):.3f}); Brier {c['brier_before']:.4f} -> {c['brier_after']:.4f} "
            f"out of sample (log-loss {c['log_loss_before']:.4f} -> {c['log_loss_after']:.4f}), {c['n']} claims")


def _open_corpus(db: str, corpus: str):
    """The session holding the user's corpus, read-only; InputError when it or the corpus is missing or empty."""
    from ..runs.ki import check_corpus
    from ..store import SessionStore

    if not Path(db).expanduser().exists():
        raise InputError(f"no session file {db}", hint="import a corpus first: kiig corpus add --db FILE --name NAME PATH")
    store = SessionStore.open(db, create=False, write=False)
    try:
        check_corpus(store, corpus)
    except BaseException:
        store.close()
        raise
    return store


def _check(args, info, claims: list[dict], claims_sha: str, jc, options, store=None) -> dict:
    from ..knowledge.judge import open_judge

    cancel = CancelToken()
    line = ProgressLine("judge-check")
    with open_judge(info.path, options) as judge:
        print_engine_warnings(judge)
        events = jc.iter_judge_check(judge, claims, k=args.k, claims_sha256=claims_sha, cancel=cancel,
                                     db=store.db if store is not None else None, corpus=args.corpus)
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
