"""Reviewing a chain in Results by keyboard: a "Review" tab beside the plots, and keys on Results.

Keys (while Results has the focus): 1 / 2 / 3 knowledge correct / incorrect / cannot tell;
H / I / M role helps / irrelevant / misleading; N types a note (Enter saves it, Esc leaves it);
Delete clears the step's verdicts; Up / Down move between steps; S / F / U the chain's overall
verdict (sound / flawed / cannot tell); Page Down opens the next chain of the review queue. The
reviewer's name is asked once (the field at the top) and kept in the settings. Every change is
stored at once in the session (``store.reviews``: append-only, on the chain record's hash).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ...errors import KiigError
from ...reports.review_stats import QUEUE_FILTERS, review_queue
from ...store import reviews
from ..shared.session_file import SessionFile
from ..shared.widgets import compact_combo, plain_label, scrollable

SETTINGS_KEY = "review/reviewer"
NOTIFY_MS = 1500  # a burst of reviews tells the other screens once
KNOWLEDGE = (("1", "correct", "Correct"), ("2", "incorrect", "Incorrect"), ("3", "cannot_tell", "Cannot tell"))
ROLE = (("H", "helps", "Helps"), ("I", "irrelevant", "Irrelevant"), ("M", "misleading", "Misleading"))
CHAIN = (("S", "sound", "Sound"), ("F", "flawed", "Flawed"), ("U", "cannot_tell", "Cannot tell"))
WORDS = {v: t.lower() for group in (KNOWLEDGE, ROLE, CHAIN) for _k, v, t in group}


class ReviewPanel(QWidget):
    """The review controls for the chain shown in a ResultsView (attach with :meth:`attach`)."""

    message = Signal(str, str)
    saved = Signal()  # a review was stored

    def __init__(self, session: SessionFile, results, qsettings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session, self.results, self.qsettings = session, results, qsettings
        self.chain_key: str | None = None
        self.mine: dict[int, dict] = {}  # step -> this reviewer's current review
        self.others: dict[int, list[dict]] = {}  # step -> other reviewers' current reviews
        self.chain_review: dict | None = None
        self._select_first = False
        self._notify = QTimer(self)
        self._notify.setSingleShot(True)
        self._notify.timeout.connect(session.notify_changed)
        self._build()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.reviewer_edit = QLineEdit(str(self.qsettings.value(SETTINGS_KEY, "") or ""))
        self.reviewer_edit.setPlaceholderText("your name, asked once")
        self.reviewer_edit.setAccessibleName("Reviewer name")
        self.reviewer_edit.editingFinished.connect(self._reviewer_changed)
        self.progress = plain_label("", "muted", wrap=True)
        self.queue_combo = compact_combo(QComboBox(), 16)
        for key, title in QUEUE_FILTERS.items():
            self.queue_combo.addItem(title, key)
        self.queue_combo.setToolTip("Which chain Page Down opens next")
        self.next_button = QPushButton("Next chain (PgDn)")
        self.next_button.clicked.connect(self.next_chain)
        form = QFormLayout()
        form.addRow("Reviewer", self.reviewer_edit)
        queue = QHBoxLayout()
        queue.addWidget(self.queue_combo, 1)
        queue.addWidget(self.next_button)
        form.addRow("Queue", queue)

        self.step_heading = plain_label("", "heading", wrap=True)
        self.step_text = plain_label("", wrap=True, selectable=True)
        self.stale = plain_label("", "warning", wrap=True)
        self.stale.hide()
        self.buttons: dict[tuple[str, str], QPushButton] = {}
        grid = QGridLayout()
        for row, (field, group) in enumerate((("knowledge", KNOWLEDGE), ("role", ROLE), ("verdict", CHAIN))):
            grid.addWidget(plain_label({"knowledge": "Knowledge", "role": "Role", "verdict": "Whole chain"}[field]), row, 0)
            for col, (key, value, title) in enumerate(group, 1):
                button = QPushButton(f"{title} ({key})")
                button.setCheckable(True)
                button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keys stay with Results
                button.clicked.connect(lambda _=False, f=field, v=value: self.set_verdict(f, v))
                grid.addWidget(button, row, col)
                self.buttons[(field, value)] = button
        self.note_edit = QLineEdit()
        self.note_edit.setPlaceholderText("N: a note on this step (Enter saves)")
        self.note_edit.setAccessibleName("Note on the step")
        self.note_edit.returnPressed.connect(self._save_note)
        leave = QShortcut(QKeySequence("Esc"), self.note_edit)
        leave.setContext(Qt.ShortcutContext.WidgetShortcut)
        leave.activated.connect(self._leave_note)
        self.chain_note = plain_label("", "muted", wrap=True)
        self.others_label = plain_label("", wrap=True, selectable=True)
        hint = plain_label("1/2/3 knowledge · H/I/M role · N note · Del clear · ↑/↓ steps · S/F/U whole chain · "
                           "PgDn next chain", "muted", wrap=True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.step_heading)
        layout.addWidget(self.step_text)
        layout.addWidget(self.stale)
        layout.addLayout(grid)
        layout.addWidget(self.note_edit)
        layout.addWidget(self.chain_note)
        layout.addWidget(self.others_label)
        layout.addWidget(hint)
        layout.addStretch(1)

    def attach(self) -> None:
        """Add the "Review" tab beside the plots and the review keys to Results."""
        self.results.right_tabs.addTab(scrollable(self), "Review")
        keys = {**{k: (lambda v=v: self.set_verdict("knowledge", v)) for k, v, _ in KNOWLEDGE},
                **{k: (lambda v=v: self.set_verdict("role", v)) for k, v, _ in ROLE},
                **{k: (lambda v=v: self.set_verdict("verdict", v)) for k, v, _ in CHAIN},
                "N": self.edit_note, "Del": self.clear_step, "Up": lambda: self.move(-1), "Down": lambda: self.move(1),
                "PgDown": self.next_chain}
        self.shortcuts = {}
        for key, slot in keys.items():
            shortcut = QShortcut(QKeySequence(key), self.results)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)  # only while Results has the focus
            shortcut.activated.connect(slot)
            self.shortcuts[key] = shortcut
        self.results.shown.connect(self._chain_shown)
        self.results.focus_changed.connect(lambda _s: self._show_step())

    def attach_presentation(self, window: QWidget, current_step: Callable[[], int]) -> None:
        """The verdict keys in the presentation window (F5) too, each acting on the step it shows:
        a review board can record verdicts while the chain is on the big screen."""
        groups = (("knowledge", KNOWLEDGE), ("role", ROLE), ("verdict", CHAIN))
        for field, group in groups:
            for key, value, _label in group:
                shortcut = QShortcut(QKeySequence(key), window)
                shortcut.activated.connect(lambda f=field, v=value: self._verdict_at(current_step(), f, v))

    def _verdict_at(self, step: int, field: str, value: str) -> None:
        if field != "verdict":
            self.results.select_step(step)  # the step under review is the one Results has selected
        self.set_verdict(field, value)

    # ------------------------------------------------------------------ state

    def reviewer(self) -> str:
        return self.reviewer_edit.text().strip()

    def _reviewer_changed(self) -> None:
        if self.reviewer():
            self.qsettings.setValue(SETTINGS_KEY, self.reviewer())
        self._load()
        self.results.table.setFocus()

    def _ready(self) -> bool:
        """A chain is shown and the reviewer is named (else the name field asks for it)."""
        if self.results.result is None or self.chain_key is None:
            return False
        if not self.reviewer():
            self.results.show_side_panel(False)
            self.results.right_tabs.setCurrentIndex(self.results.right_tabs.count() - 1)
            self.reviewer_edit.setFocus()
            self.message.emit("Type your name as reviewer and press Enter: it is asked once and kept.", "info")
            return False
        return True

    def step(self) -> int | None:
        """The step under review: the selected one (step 1 is selected when none is)."""
        result = self.results.result
        n = len(result.record.get("steps") or []) if result is not None else 0
        if not n:
            return None
        if self.results.selected is None:
            self.results.select_step(0)
        return self.results.selected

    def _chain_shown(self, result) -> None:
        self.chain_key = self.session.read(lambda st: reviews.chain_key(st, result.chain_id))
        self._load()
        if self._select_first and result.record.get("steps"):
            self._select_first = False
            self.results.select_step(0)

    def _load(self) -> None:
        """Reread this chain's current reviews (mine and the others') and the run's progress."""
        result = self.results.result
        if result is None or self.chain_key is None:
            return
        me = self.reviewer()

        def read(st):
            steps = [r for r in reviews.step_reviews(st, result.run_id) if r["chain_key"] == self.chain_key]
            chain = [r for r in reviews.chain_reviews(st, result.run_id, reviewer=me or None) if r["chain_key"] == self.chain_key]
            return steps, chain, reviews.progress(st, result.run_id, me or None)

        try:
            steps, chain, progress = self.session.read(read)
        except KiigError as exc:
            self.message.emit(str(exc), "error")
            return
        self.mine = {r["step_index"]: r for r in steps if r["reviewer"] == me}
        self.others = {}
        for r in steps:
            if r["reviewer"] != me:
                self.others.setdefault(r["step_index"], []).append(r)
        self.chain_review = chain[-1] if me and chain else None
        who = f"by {me}" if me else "by anyone"
        self.progress.setText(f"{progress['reviewed']} of {progress['total']} chains of run {result.run_id} reviewed {who}")
        self._show_step()

    def _show_step(self) -> None:
        result = self.results.result
        step = self.results.focused_step() if result is not None else None
        steps = (result.record.get("steps") or []) if result is not None else []
        mine = self.mine.get(step, {}) if step is not None else {}
        if step is None or step >= len(steps):
            self.step_heading.setText("No step selected: ↑/↓ or a verdict key starts at step 1")
            self.step_text.setText("")
        else:
            s = steps[step] if isinstance(steps[step], dict) else {"text": steps[step]}
            self.step_heading.setText(f"Step {step + 1} of {len(steps)}")
            self.step_text.setText(str(s.get("text", "")))
        for (field, value), button in self.buttons.items():
            current = (self.chain_review or {}).get("verdict") if field == "verdict" else mine.get(field)
            button.setChecked(current == value)
        if not self.note_edit.hasFocus():
            self.note_edit.setText(mine.get("note") or "")
        stale = bool(mine.get("stale") or (self.chain_review or {}).get("stale"))
        self.stale.setText("Made on an earlier version of this chain (it was re-scored since): review it again.")
        self.stale.setVisible(stale)
        note = (self.chain_review or {}).get("note")
        self.chain_note.setText(f"Chain note: {note}" if note else "")
        others = self.others.get(step, []) if step is not None else []
        lines = []
        for r in others:
            differs = any(r[f] and mine.get(f) and r[f] != mine[f] for f in ("knowledge", "role"))
            text = " · ".join(WORDS[r[f]] for f in ("knowledge", "role") if r[f]) or "no verdict"
            lines.append(f"{'≠ ' if differs else ''}{r['reviewer']}: {text}" + (f" — {r['note']}" if r["note"] else ""))
        self.others_label.setText("\n".join(lines))

    # ------------------------------------------------------------------ actions

    def set_verdict(self, field: str, value: str) -> None:
        """Store a verdict for the step under review (``knowledge``/``role``) or the chain (``verdict``)."""
        if not self._ready():
            return
        if field == "verdict":
            self._store(lambda st, r, me: reviews.review_chain(st, r.run_id, self.chain_key, me, verdict=value))
            return
        step = self.step()
        if step is not None:
            self._store(lambda st, r, me: reviews.review_step(st, r.run_id, self.chain_key, step, me, **{field: value}))

    def clear_step(self) -> None:
        step = self.step() if self._ready() else None
        if step is not None:
            self._store(lambda st, r, me: reviews.review_step(st, r.run_id, self.chain_key, step, me, knowledge=None, role=None))

    def edit_note(self) -> None:
        if self._ready() and self.step() is not None:
            self.results.right_tabs.setCurrentIndex(self.results.right_tabs.count() - 1)
            self.note_edit.setFocus()
            self.note_edit.selectAll()

    def _save_note(self) -> None:
        step = self.step() if self._ready() else None
        if step is not None:
            text = self.note_edit.text()
            self._store(lambda st, r, me: reviews.review_step(st, r.run_id, self.chain_key, step, me, note=text))
        self._leave_note()

    def _leave_note(self) -> None:
        self.results.table.setFocus()
        self._show_step()

    def _store(self, write) -> None:
        result, me = self.results.result, self.reviewer()
        try:
            self.session.write(lambda st: write(st, result, me))
        except KiigError as exc:
            self.message.emit(str(exc), "error")
            return
        self._load()
        self.saved.emit()
        self._notify.start(NOTIFY_MS)

    def move(self, delta: int) -> None:
        result = self.results.result
        n = len(result.record.get("steps") or []) if result is not None else 0
        if n:
            current = self.results.selected if self.results.selected is not None else (-1 if delta > 0 else n)
            self.results.select_step(max(0, min(n - 1, current + delta)))

    def next_chain(self) -> None:
        """Open the next chain of the queue chosen above (after the one shown)."""
        result = self.results.result
        if result is None or not self._ready():
            return
        mode, me = self.queue_combo.currentData(), self.reviewer()
        try:
            queue = self.session.read(lambda st: review_queue(st, result.run_id, me, mode))
        except KiigError as exc:
            self.message.emit(str(exc), "error")
            return
        ids = [c["id"] for c in queue]
        if result.chain_id in ids:  # walk on from the shown chain
            ids = ids[ids.index(result.chain_id) + 1:] + ids[:ids.index(result.chain_id)]
        if not ids:
            self.message.emit(f"No other chain in the queue “{self.queue_combo.currentText()}” of run {result.run_id}.", "info")
            return
        self._select_first = True
        self.results.open_chain(result.run_id, ids[0])
