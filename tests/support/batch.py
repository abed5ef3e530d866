"""Reading back and driving batch runs (runs/batch.py) the same way in every test that compares them."""

from __future__ import annotations

from pathlib import Path

from kiig_desktop.events import CancelToken, ItemDone, run_to_end
from kiig_desktop.store import SessionStore


def snapshot(db: Path) -> dict:
    """Every stored result of the session's batch run except wall-clock timings and timestamps."""
    out = {}
    with SessionStore.open(db, write=False) as store:
        run = next(r for r in store.list_runs() if r["kind"] == "batch")
        out["_run"] = (run["status"], run["settings"], run["seed"])
        for chain in store.chains_for_run(run["id"]):
            record = store.load_chain(chain["id"])
            record.pop("timing")
            # the record hash a KI evaluation names covers the timings; whether it is current is compared
            ki = [{k: v for k, v in ev.items() if k not in ("created", "chain_sha256")} for ev in store.load_ki(chain["id"])]
            out[chain["key"]] = {"record": record, "generation": store.load_generation(chain["id"]),
                                 "item": store.load_item(chain["id"]), "ki": ki}
    return out


def drive(gen, stop_after: int | None = None, cancel: CancelToken | None = None) -> tuple[list[dict], object]:
    """Run a batch generator to its summary, collecting finished records; cancel after ``stop_after`` of them."""
    records: list[dict] = []

    def on_event(event) -> None:
        if isinstance(event, ItemDone):
            records.append(event.result)
            if stop_after is not None and len(records) == stop_after:
                cancel.cancel()

    return records, run_to_end(gen, on_event)
