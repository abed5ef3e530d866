"""A combo box of usable models that follows the catalogue and shows which are loaded."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QListWidget, QListWidgetItem, QSizePolicy

from ...engine.models import ModelInfo
from .engines import Engines


def model_label(info: ModelInfo, loaded: bool) -> str:
    quant = info.header.quantization if info.header else "?"
    return f"{'● ' if loaded else ''}{info.name}  ·  {quant}"


class ModelCombo(QComboBox):
    """Lists the models without header errors; keeps the chosen id across refreshes."""

    def __init__(self, engines: Engines, parent=None) -> None:
        super().__init__(parent)
        self.engines = engines
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("● marks a loaded model")
        engines.models_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        current = self.currentData()
        self.blockSignals(True)
        try:
            self.clear()
            for info in self.engines.models:
                if info.error is None:
                    self.addItem(model_label(info, self.engines.is_loaded(info.id)), info.id)
            wanted = current or (self.engines.default_model().id if self.engines.default_model() else None)
            index = self.findData(wanted)
            self.setCurrentIndex(index if index >= 0 else 0)
        finally:
            self.blockSignals(False)
        if self.currentData() != current:
            self.currentIndexChanged.emit(self.currentIndex())

    def chosen(self) -> ModelInfo | None:
        return self.engines.find(self.currentData())

    def select(self, model_id: str) -> None:
        index = self.findData(model_id)
        if index >= 0:
            self.setCurrentIndex(index)


class ModelCheckList(QListWidget):
    """The usable models (broken files left out) with a check box each: pick several at once."""

    def fill(self, engines: Engines, checked: set[str], tooltip=None) -> None:
        """Rebuild from ``engines.models``, checking the ids in ``checked``; ``tooltip(info)`` per row."""
        self.clear()
        for info in engines.models:
            if info.error:
                continue
            item = QListWidgetItem(model_label(info, engines.is_loaded(info.id)))
            item.setData(Qt.ItemDataRole.UserRole, info.id)
            if tooltip is not None:
                item.setToolTip(tooltip(info))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if info.id in checked else Qt.CheckState.Unchecked)
            self.addItem(item)

    def checked_ids(self) -> list[str]:
        return [self.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.count())
                if self.item(i).checkState() == Qt.CheckState.Checked]

    def set_checked(self, ids: list[str]) -> None:
        for i in range(self.count()):
            item = self.item(i)
            item.setCheckState(Qt.CheckState.Checked if item.data(Qt.ItemDataRole.UserRole) in ids else Qt.CheckState.Unchecked)
