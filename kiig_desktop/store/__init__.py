"""Session storage: every analysis in one SQLite file (``.kiig``), crash-safe and resumable.

``SessionStore.open(path)`` creates or opens a session; see ``schema.py`` for the tables and
``session.py`` for the API. ``export.py`` writes and reads CSV/JSONL.
"""

from .schema import APPLICATION_ID, SCHEMA_VERSION
from .session import SessionStore, compute_run_key

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SessionStore", "compute_run_key"]
