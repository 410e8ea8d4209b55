"""Embedded matplotlib figures and export paths, shared by the plotting widgets."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_error


def embed_figure(container: Any, figsize: tuple[float, float], min_height: int) -> tuple:
    """Add a matplotlib figure (Qt canvas) at the bottom of a magicgui container.

    Returns the figure and its canvas.
    """
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    canvas = FigureCanvasQTAgg(figure)
    canvas.setMinimumHeight(min_height)
    container.native.layout().addWidget(canvas)
    return figure, canvas


def export_path(path: Any, ask: Callable[[], str]) -> str:
    """The path given to an export method, or the one the user picks ('' to cancel).

    A button's ``changed`` signal passes its value (a bool), not a path.
    """
    return path if isinstance(path, str) and path else ask()


def write_or_notify(path: str, write: Callable[[], Path]) -> Path | None:
    """Write through ``write`` unless the user cancelled (empty path); a failure becomes
    a notification, and the atomic writers leave nothing behind."""
    if not path:
        return None
    try:
        return write()
    except OSError as exc:
        show_error(f"cannot write {path}: {exc}")
        return None
