"""One home for the plugin: every tool in one dock, in tabs that scroll.

The five tools (Fit, Compare methods, Compare masks, Statistics, Inspect) stay separate
widgets (each is also its own dock); the panel holds one of each, each tab in a
scroll area, so the whole plugin fits a 1280x800 screen beside the canvas.
"""

from typing import Any

import napari
from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import (
    QComboBox,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from .compare_widget import CompareWidget, StatsWidget
from .inspector import InspectorWidget
from .methods_widget import MethodsWidget
from .widgets import FitWidget

#: Width the panel asks for: enough for the forms and plots, leaving the canvas room
#: on a 1280-pixel screen; it may be made narrower down to ``PANEL_MIN_WIDTH``.
PANEL_WIDTH = 400
PANEL_MIN_WIDTH = 320


def open_panel(viewer: napari.viewer.Viewer) -> "GmmPanel":
    """Dock the panel on the right of a viewer and fit the frame in the canvas left.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer.

    Returns
    -------
    GmmPanel
        The docked panel.
    """
    panel = GmmPanel(viewer)
    viewer.window.add_dock_widget(panel, name="GMM background", area="right")
    return panel


def narrow(widget: QWidget) -> None:
    """Let a form shrink to the dock's width: long layer names and messages wrap or
    elide instead of pushing controls out of sight."""
    for combo in widget.findChildren(QComboBox):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(12)
    for label in widget.findChildren(QLabel):
        if label.text() and len(label.text()) > 20 or not label.text():
            label.setWordWrap(True)
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    for table in widget.findChildren(QTableWidget):
        header = table.horizontalHeader()
        if header is not None:
            header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
            header.setTextElideMode(Qt.TextElideMode.ElideLeft)


def scrolled(widget: QWidget) -> QScrollArea:
    """Wrap a widget in a vertical scroll area that follows the dock's width.

    Parameters
    ----------
    widget : QWidget
        The content.

    Returns
    -------
    QScrollArea
        The scroll area holding it.
    """
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setWidget(widget)
    return area


class GmmPanel(QWidget):
    """Every tool of the plugin in one dock widget: tabs, each scrolling.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer the tools work on.

    Attributes
    ----------
    fit, methods, compare, stats, inspector
        The tools (the same classes as the separate docks).
    tabs : QTabWidget
        The tabs, in the order of the work: fit, compare, score, count, inspect.
    """

    TABS = ("Fit", "Methods", "Evaluate", "Statistics", "Inspect")

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.fit = FitWidget(viewer)
        self.methods = MethodsWidget(viewer)
        self.compare = CompareWidget(viewer)
        self.stats = StatsWidget(viewer)
        self.inspector = InspectorWidget(viewer)
        self.tabs = QTabWidget()
        self.tabs.setUsesScrollButtons(True)
        tips = (
            "Fit the per-pixel Gaussian mixture to a video and show its mask",
            "Run another method (MOG2, KNN, median baseline) on the same video",
            "Compare two masks, and score them against ground truth",
            "Foreground area and number of blobs per frame of a mask",
            "Click a pixel to see its values over time and how the model scores them",
        )
        tools = (self.fit, self.methods, self.compare, self.stats, self.inspector)
        for title, tip, tool in zip(self.TABS, tips, tools, strict=True):
            tool.native.layout().addStretch(1)  # rows packed at the top, not spread out
            index = self.tabs.addTab(scrolled(tool.native), title)
            self.tabs.setTabToolTip(index, tip)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        narrow(self.tabs)
        self.setMinimumWidth(PANEL_MIN_WIDTH)
        # Clicks on the canvas inspect a pixel only while the Inspect tab is open: a click
        # made to paint or select must not start a read of a long video.
        self.tabs.currentChanged.connect(self._on_tab)
        self._on_tab(self.tabs.currentIndex())
        # napari refreshes a dock's layer choices through its reset_choices; the tools
        # inside the panel are not docks themselves.
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self.reset_choices)
        self.destroyed.connect(self._disconnect)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        """Ask napari for a dock ``PANEL_WIDTH`` wide: the canvas keeps the rest."""
        return QSize(PANEL_WIDTH, 600)

    def _disconnect(self, *_: Any) -> None:
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.disconnect(self.reset_choices)

    def _on_tab(self, index: int) -> None:
        self.inspector._active.value = self.TABS[index] == "Inspect"

    def reset_choices(self, *_: Any) -> None:
        """Refresh every tool's layer choices (napari calls this when layers change)."""
        for tool in (self.fit, self.methods, self.compare, self.stats, self.inspector):
            tool.reset_choices()

    def show_tab(self, title: str) -> Any:
        """Bring a tab to the front by its title and return its tool.

        Parameters
        ----------
        title : str
            One of :attr:`TABS`.

        Returns
        -------
        magicgui.widgets.Container
            The tool in that tab.
        """
        index = self.TABS.index(title)
        self.tabs.setCurrentIndex(index)
        return (self.fit, self.methods, self.compare, self.stats, self.inspector)[index]
