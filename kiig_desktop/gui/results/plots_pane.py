"""The Results view's plots column: the answer, token and option plots, each in its frame with an
explanation and Export, stacked in a splitter inside a scroll area (short screens scroll, plots
keep a readable height)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QScrollArea, QSplitter

from ..shared.figures import AnswerFigure, OptionsFigure, TokenFigure
from ..shared.plots import StepFigure
from ..shared.widgets import PlotFrame, compact_combo

PLOT_MIN_HEIGHT = 220  # px: a data area of about 100 px below the legend, between the axes' titles


class PlotsPane:
    """The three figures (``answer_fig``, ``token_fig``, ``options_fig``), their ``frames`` by key,
    the NLL/perplexity switch (``metric_combo``), the ``splitter`` and the scroll ``area`` around it."""

    def __init__(self) -> None:
        self.answer_fig = AnswerFigure()
        self.token_fig = TokenFigure()
        self.options_fig = OptionsFigure()
        metric = compact_combo(QComboBox(), 8)
        metric.addItem("NLL (nats)", "nll")
        metric.addItem("Perplexity", "ppl")
        metric.currentIndexChanged.connect(lambda _i: self.answer_fig.set_metric(metric.currentData()))
        self.metric_combo = metric
        self.frames = {
            "answer": PlotFrame("Answer uncertainty across steps",
                                "Answer NLL after each prefix; bars: InfoGain per step (up helped, down hurt).",
                                self.answer_fig, extra=metric, help_key="info_gain"),
            "tokens": PlotFrame("Token surprisal and entropy",
                                "Per reasoning token, as the scorer read it; dotted lines are step boundaries.", self.token_fig,
                                help_key="surprisal"),
            "options": PlotFrame("Option probabilities across steps",
                                 "The scorer's probability of each option after each prefix (correct option bold).",
                                 self.options_fig, help_key="option_probs"),
        }
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        for fig in self.figures():
            fig.setMinimumHeight(PLOT_MIN_HEIGHT)  # readable axes and legends; the column scrolls instead
            policy = fig.sizePolicy()
            policy.setRetainSizeWhenHidden(True)  # hidden until drawn (show_result) without a relayout
            fig.setSizePolicy(policy)
        self.answer_fig.setMinimumHeight(PLOT_MIN_HEIGHT + 90)  # two panels share it
        for frame in self.frames.values():
            self.splitter.addWidget(frame)
        self.splitter.setSizes([380, 260, 260])
        self.area = QScrollArea()  # on short screens the plots keep their height and scroll
        self.area.setWidget(self.splitter)
        self.area.setWidgetResizable(True)
        self.area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.area.setMinimumWidth(320)

    def figures(self) -> list[StepFigure]:
        return [self.answer_fig, self.token_fig, self.options_fig]
