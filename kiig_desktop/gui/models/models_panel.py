"""Models panel: the discovered models, their metadata, load options and load/unload with progress."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...config import max_threads
from ...engine.models import ModelInfo
from ...units import human_bytes, human_count
from ..shared.engines import Engines
from ..shared.task_ui import button_row, primary_button
from ..shared.theme import theme
from ..shared.widgets import ElidedLabel, plain_label

SOURCE_TITLES = {"builtin": "Embedded", "folder": "Models folder / added", "system": "Shared models folder", "lmstudio": "LM Studio", "ollama": "Ollama"}


class ModelsPanel(QWidget):
    """Lists models by source; the selected one's details, options and load state below."""

    message = Signal(str, str)

    def __init__(self, engines: Engines, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engines = engines
        self._sha: dict[str, str] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        buttons = QHBoxLayout()
        self.add_button = QPushButton("Add GGUF…")
        self.add_button.setToolTip("Add a .gguf model file (you can also drop one on the window)")
        self.refresh_button = QPushButton("Rescan")
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.refresh_button)
        buttons.addStretch(1)
        layout.addLayout(buttons)

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Model", "Quant", "State"])
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setMinimumHeight(110)
        layout.addWidget(self.tree, 1)

        details = QGroupBox("Details")
        form = QFormLayout(details)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.fields: dict[str, ElidedLabel] = {}
        for key, title in (("name", "Name"), ("source", "Source"), ("architecture", "Architecture"),
                           ("parameters", "Parameters"), ("quantization", "Quantization"), ("context", "Context"),
                           ("size", "File size"), ("path", "Path"), ("exactness", "Exactness")):
            label = ElidedLabel("—")
            self.fields[key] = label
            form.addRow(plain_label(title), label)
        sha_row = QHBoxLayout()
        self.sha_label = ElidedLabel("—")
        self.sha_label.setProperty("role", "muted")
        self.sha_copy = QToolButton()
        self.sha_copy.setText("Copy")
        self.sha_copy.setAutoRaise(True)
        self.sha_copy.setToolTip("Copy the SHA-256 to the clipboard")
        self.sha_copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.sha_label.full_text))
        self.sha_button = QPushButton("Compute")
        self.sha_button.setToolTip("Hash the whole file (runs in the background)")
        sha_row.addWidget(self.sha_label, 1)
        sha_row.addWidget(self.sha_copy)
        sha_row.addWidget(self.sha_button)
        form.addRow(plain_label("SHA-256"), sha_row)
        layout.addWidget(details)

        options = QGroupBox("Load options")
        oform = QFormLayout(options)
        self.n_ctx = QSpinBox()
        self.n_ctx.setRange(512, 262144)
        self.n_ctx.setSingleStep(512)
        self.n_ctx.setSuffix(" tokens")
        self.n_gpu = QSpinBox()
        self.n_gpu.setRange(-1, 999)
        self.n_gpu.setSpecialValueText("all")
        self.n_gpu.setToolTip("Layers offloaded to the GPU (−1 = all, 0 = CPU only)")
        self.threads = QSpinBox()
        self.threads.setRange(0, max_threads())
        self.threads.setSpecialValueText("auto")
        self.threads.setToolTip(f"CPU threads (auto: the cores available, up to 8); at most {max_threads()}: "
                                "4 per core, as more only slow the model down")
        oform.addRow(plain_label("Context"), self.n_ctx)
        oform.addRow(plain_label("GPU layers"), self.n_gpu)
        oform.addRow(plain_label("Threads"), self.threads)
        self.gpu_note = plain_label("", "muted", wrap=True)
        oform.addRow(self.gpu_note)
        self.load_button = primary_button("Load")
        self.unload_button = QPushButton("Unload")
        oform.addRow(button_row(self.load_button, self.unload_button, stretch=False))
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(6)
        policy = self.progress.sizePolicy()
        policy.setRetainSizeWhenHidden(True)  # showing it at each load then relays out nothing
        self.progress.setSizePolicy(policy)
        self.progress.hide()
        oform.addRow(self.progress)
        layout.addWidget(options)

        self.add_button.clicked.connect(self.add_dialog)
        self.refresh_button.clicked.connect(self.engines.refresh)
        self.tree.currentItemChanged.connect(lambda *_: self._show_current())
        self.sha_button.clicked.connect(self.compute_sha)
        self.load_button.clicked.connect(self.load_current)
        self.unload_button.clicked.connect(self.unload_current)
        for spin in (self.n_ctx, self.n_gpu, self.threads):
            spin.valueChanged.connect(self._options_edited)
        engines.models_changed.connect(self.populate)
        engines.loading.connect(self._loading)
        engines.loaded.connect(self._loaded)
        engines.error.connect(lambda _t: self.progress.hide())
        theme().changed.connect(self.populate)
        self.populate()

    # ------------------------------------------------------------------ list

    def populate(self) -> None:
        current = self.current_id()
        self.tree.clear()
        groups: dict[str, QTreeWidgetItem] = {}
        muted = QColor(theme().colors()["muted"])
        for info in self.engines.models:
            group = groups.get(info.source)
            if group is None:
                group = QTreeWidgetItem([SOURCE_TITLES.get(info.source, info.source)])
                group.setFlags(Qt.ItemFlag.ItemIsEnabled)
                font = group.font(0)
                font.setBold(True)
                group.setFont(0, font)
                groups[info.source] = group
                self.tree.addTopLevelItem(group)
            loaded = self.engines.is_loaded(info.id)
            state = "error" if info.error else "loaded" if loaded else ""
            item = QTreeWidgetItem([info.name, info.header.quantization if info.header else "—", state])
            item.setData(0, Qt.ItemDataRole.UserRole, info.id)
            item.setToolTip(0, info.path)
            if info.error:
                item.setForeground(0, muted)
                item.setToolTip(2, info.error)
            elif loaded:
                item.setForeground(2, QColor(theme().colors()["good"]))
            group.addChild(item)
            if info.id == current or (current is None and info.source == "builtin"):
                self.tree.setCurrentItem(item)
        self.tree.expandAll()
        if not self.engines.models:
            self._show_current()

    def current_id(self) -> str | None:
        item = self.tree.currentItem()
        return item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None

    def current(self) -> ModelInfo | None:
        return self.engines.find(self.current_id())

    def select(self, model_id: str) -> None:
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            for j in range(group.childCount()):
                if group.child(j).data(0, Qt.ItemDataRole.UserRole) == model_id:
                    self.tree.setCurrentItem(group.child(j))

    # ------------------------------------------------------------------ details

    def _show_current(self) -> None:
        info = self.current()
        h = info.header if info else None
        values = {
            "name": info.name if info else "—", "source": SOURCE_TITLES.get(info.source, info.source) if info else "—",
            "architecture": h.architecture if h else "—", "parameters": human_count(h.parameters or None, "—", " ") if h else "—",
            "quantization": h.quantization if h else "—",
            "context": f"{h.context_length:,} tokens (trained)" if h and h.context_length else "—",
            "size": human_bytes(info.size or None, "—") if info else "—", "path": info.path if info else "—",
        }
        if info and info.error:
            values["architecture"] = info.error
        client = self.engines.client(info.id) if info else None
        values["exactness"] = exactness_text(client.info if client else None)
        for key, value in values.items():
            self.fields[key].set_full_text(value)
        self.fields["exactness"].setToolTip(
            "Measured when the model loads: the same 16 tokens decoded in one batch, in batches of 8 and with the "
            "last one alone must give bit-identical numbers for incremental scoring to be exact. Where they do not, each "
            "prefix is scored from scratch (exact, slower) unless fast_not_exact is set in settings.json.")
        sha = self._sha.get(info.id) if info else None
        sha = sha or (info.known_sha256 if info else None)
        self.sha_label.set_full_text(sha or "—")
        self.sha_button.setVisible(sha is None)
        self.sha_copy.setVisible(sha is not None)
        self.sha_button.setEnabled(info is not None and info.error is None and sha is None)
        usable = info is not None and info.error is None
        loaded = usable and self.engines.is_loaded(info.id)
        self.load_button.setEnabled(usable and not loaded)
        self.unload_button.setEnabled(bool(loaded))
        for spin in (self.n_ctx, self.n_gpu, self.threads):
            spin.setEnabled(usable and not loaded)
        if usable:
            opts = self.engines.options(info.id)
            for spin, value in ((self.n_ctx, opts.n_ctx), (self.n_gpu, opts.n_gpu_layers), (self.threads, opts.n_threads or 0)):
                spin.blockSignals(True)
                spin.setValue(int(value))
                spin.blockSignals(False)
            if h and h.context_length:
                self.n_ctx.setMaximum(max(512, h.context_length))
        self._update_gpu_note()

    def _update_gpu_note(self) -> None:
        info = self.engines.build_info
        if info is None:
            self.gpu_note.setText("GPU offload support is checked when the first model loads.")
        elif not info.get("gpu_offload"):
            self.gpu_note.setText("CPU-only llama.cpp build: GPU layers are ignored (rebuild with CUDA, Vulkan or Metal).")
        else:
            self.gpu_note.setText("GPU offload is available in this build.")
        self.n_gpu.setEnabled(self.n_gpu.isEnabled() and bool(info and info.get("gpu_offload")))

    def _options_edited(self) -> None:
        info = self.current()
        if info is not None:
            self.engines.set_options(info.id, self.n_ctx.value(), self.n_gpu.value(), self.threads.value() or None)

    # ------------------------------------------------------------------ actions

    def add_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a GGUF model", "", "GGUF models (*.gguf);;All files (*)")
        if path:
            self.engines.add_model_file(path)

    def compute_sha(self) -> None:
        info = self.current()
        if info is None:
            return
        self.sha_button.setEnabled(False)
        self.sha_label.set_full_text("hashing…")
        task = self.engines.tasks.run(f"SHA-256 of {info.name}", lambda _c: info.sha256())
        task.succeeded.connect(lambda digest: self._sha_done(info.id, digest))
        task.failed.connect(lambda text: self.sha_label.set_full_text(text))

    def _sha_done(self, model_id: str, digest: str) -> None:
        self._sha[model_id] = digest
        if self.current_id() == model_id:
            self._show_current()

    def load_current(self) -> None:
        info = self.current()
        if info is None or info.error:
            return
        self.progress.setValue(0)
        self.progress.show()
        self.load_button.setEnabled(False)
        task = self.engines.load(info)
        task.finished.connect(self._show_current)

    def unload_current(self) -> None:
        info = self.current()
        if info is not None:
            self.engines.unload(info.id)
            self.unload_button.setEnabled(False)

    def _loading(self, model_id: str, value: float) -> None:
        self.progress.show()
        self.progress.setValue(int(value * 100))

    def _loaded(self, model_id: str) -> None:
        self.progress.hide()
        self._show_current()


def exactness_text(info: dict | None) -> str:
    """The load-time batch-invariance verdict of a loaded model and the scoring path it chose."""
    if not info or "invariance" not in info:
        return "measured at load"
    inv, path = info["invariance"], info.get("scoring")
    what = {"incremental": "incremental scoring is exact",
            "from-scratch": "each prefix is scored from scratch (exact, slower)",
            "fast-not-exact": "incremental scoring, NOT exact (fast mode)"}.get(path, str(path))
    return f"batch invariance {inv.get('verdict')} ({inv.get('seconds', 0.0):.2f} s): {what}"
