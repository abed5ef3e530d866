"""``kiig ki``: the Knowledge Index of each reasoning step, from a reference corpus and a local judge.

Input lines: ``kiig score`` output lines, or input lines with ``"steps"`` (strings or objects with
``"text"`` and optionally ``"knowledge"``). Output, one line per input line in the same order:
``{"id", "steps": [{"index", "text", "applicable", "ki", "reason", "judge_p_yes", "judge_p_no",
"evidence": [{"source", "chunk", "score", "chunk_id"}]}], "ki_mean", "model": {"path", "sha256"},
"n_applicable", "n_judged", "error"?}``.

Every chain is committed to the session (a run of kind ``ki``) as soon as it is judged; running
the same command again skips the chains already done and writes the same output.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import __version__
from ..errors import Cancelled, InputError, KiigError
from ..events import CancelToken, ItemDone, Progress
from ..files import private_output
from ._progress import ProgressLine

KI_METHOD_VERSION = 1  # bump when the prompt, candidates or applicability rules change results


def register(sub) -> None:
    p = sub.add_parser("ki", help="Knowledge Index: check each step against a reference corpus with a local judge model")
    p.add_argument("--model", required=True, help="judge model: a .gguf path, a model id/name from `kiig models`, or `default`")
    p.add_argument("--db", required=True, help="the session file holding the corpus (results are stored there too)")
    p.add_argument("--corpus", required=True, help="name of the reference corpus (see `kiig corpus list`)")
    p.add_argument("--input", required=True, help="JSONL: `kiig score` output, or lines with \"steps\"")
    p.add_argument("--output", required=True, help="JSONL file to write, one line per input line")
    p.add_argument("--k", type=int, default=3, help="passages retrieved per step (default 3)")
    p.add_argument("--max-prompt-chars", type=int, default=6000,
                   help="judge prompt budget in characters (default 6000, for a 2048-token context)")
    p.set_defaults(func=run)


def read_items(path: str) -> list[dict]:
    """Parse and validate the whole input file first, so a bad line stops before any model loads."""
    from ..knowledge.ki import parse_ki_item

    items: list[dict] = []
    seen: dict[str, int] = {}
    try:
        with open(path, encoding="utf-8", errors="strict") as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}: line {line_no} is not valid JSON ({exc.msg})") from None
                item = parse_ki_item(obj, line_no)
                if item["id"] in seen:
                    raise InputError(f"{path}: id {item['id']!r} appears on lines {seen[item['id']]} and {line_no}; ids must be unique")
                seen[item["id"]] = line_no
                item["_source"] = obj
                items.append(item)
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not items:
        raise InputError(f"{path} holds no input lines")
    return items


def _stored_item(src: dict) -> dict | None:
    """The input item as the session keeps it (only when the line carries a question)."""
    if not isinstance(src.get("question"), str):
        return None
    keep = ("id", "question", "answer", "options", "answer_idx")
    return {k: src[k] for k in keep if k in src}


def _reusable(record: dict, item: dict) -> bool:
    """A stored record answers this input line only if it judged the same step texts."""
    if item.get("error"):
        return bool(record.get("error")) and not record.get("steps")
    return [s.get("text") for s in record.get("steps") or []] == [s["text"] for s in item["steps"]]


def run(args: argparse.Namespace) -> int:
    from ..knowledge.corpus import corpus_fingerprint
    from ..knowledge.ki import ki_items
    from ..knowledge.search import corpus_id
    from ..store import SessionStore

    if not 1 <= args.k <= 20:
        raise InputError(f"--k must be between 1 and 20, got {args.k}")
    if args.max_prompt_chars < 1000:
        raise InputError(f"--max-prompt-chars must be at least 1000, got {args.max_prompt_chars}")
    items = read_items(args.input)
    if not Path(args.db).expanduser().exists():
        raise InputError(f"no session file {args.db}", hint="import a corpus first: kiig corpus add --db FILE --name NAME PATH")
    with SessionStore.open(args.db, create=False, write=True) as store:
        cid = corpus_id(store.db, args.corpus)
        if not store.db.execute("SELECT 1 FROM corpus_chunks WHERE corpus_id = ? LIMIT 1", [cid]).fetchone():
            raise InputError(f"corpus {args.corpus!r} is empty")
        settings = {"corpus": args.corpus, "corpus_fingerprint": corpus_fingerprint(store.db, args.corpus), "k": args.k,
                    "max_prompt_chars": args.max_prompt_chars, "method": KI_METHOD_VERSION}
        # the output appears complete or not at all; what was judged is already in the session
        with private_output(args.output, keep=(args.input, args.db)) as out:
            return _judge_all(args, store, items, settings, out, ki_items)


def _judge_all(args, store, items: list[dict], settings: dict, out, ki_items) -> int:
    from ..knowledge.ki import judge_model_ref

    try:
        from ..knowledge.judge import open_judge
    except ImportError as exc:
        raise KiigError(f"the judge engine is not available in this build ({exc})") from None
    with open_judge(args.model) as judge:
        judge_id = store.ensure_model(judge_model_ref(judge))
        run_id, created = store.find_or_create_run("ki", settings, {"judge": judge_id}, {"kiig": __version__})
        stored = {} if created else store.load_run_records(run_id)
        results = {it["id"]: stored[it["id"]] for it in items if it["id"] in stored and _reusable(stored[it["id"]], it)}
        if results:
            print(f"kiig ki: {len(results)} chains already done in this session; skipping them", file=sys.stderr)
        todo = [it for it in items if it["id"] not in results]
        written = 0

        def write_ready() -> None:
            nonlocal written
            while written < len(items) and items[written]["id"] in results:
                out.write(json.dumps(results[items[written]["id"]], ensure_ascii=False) + "\n")
                written += 1
            out.flush()

        write_ready()
        cancel = CancelToken()
        line = ProgressLine("ki")
        events = ki_items(store.db, args.corpus, judge, todo, k=args.k, cancel=cancel,
                          max_prompt_chars=args.max_prompt_chars) if todo else iter(())
        try:
            for event in events:
                if isinstance(event, Progress):
                    line.update(event, force=event.done == event.total)
                elif isinstance(event, ItemDone):
                    record = event.result
                    item = todo[event.index]
                    ki = None if record.get("error") else {
                        "judge_model_id": judge_id, "corpus": args.corpus, "steps": record["steps"], "ki_mean": record["ki_mean"]}
                    store.save_chain(run_id, item["id"], record, item=_stored_item(item["_source"]), ki=ki)
                    results[item["id"]] = record
                    write_ready()
        except (Cancelled, KeyboardInterrupt) as exc:
            store.set_run_status(run_id, "cancelled" if isinstance(exc, Cancelled) else "interrupted")
            raise
        finally:
            line.close()
        store.set_run_status(run_id, "finished")
    errors = sum(1 for it in items if results[it["id"]].get("error"))
    print(f"kiig ki: {len(items)} chains, {errors} with errors -> {args.output}", file=sys.stderr)
    return 1 if errors else 0
