"""Embedded matplotlib figures and export paths, shared by the plotting widgets."""

import contextlib
from collections.abc import Callable, Iterator
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


def theme_colours(viewer: Any) -> dict[str, str]:
    """The colours of napari's current theme that plots use (hex strings).

    Parameters
    ----------
    viewer : napari.viewer.Viewer or None
        Its ``theme`` is followed; napari's default ("dark") without a viewer.

    Returns
    -------
    dict
        ``background`` (the dock's), ``axes`` (the plot area's), ``text`` and ``grid``.
    """
    from napari.utils.theme import get_theme

    name = getattr(viewer, "theme", None) or "dark"
    try:
        theme = get_theme(name)
    except (ValueError, KeyError):
        theme = get_theme("dark")
    return {
        "background": theme.background.as_hex(),
        "axes": theme.foreground.as_hex(),
        "text": theme.text.as_hex(),
        "grid": theme.highlight.as_hex(),
    }


@contextlib.contextmanager
def themed_plots(viewer: Any, figure: Any = None) -> Iterator[dict[str, str]]:
    """Draw inside this context to follow napari's theme (dark by default).

    Matplotlib reads its style when an axis is made, so the figure's axes are made
    within the context.

    Parameters
    ----------
    viewer : napari.viewer.Viewer or None
        The viewer whose theme is followed.
    figure : matplotlib.figure.Figure, optional
        A figure to give the theme's background (its axes are made in the context).

    Yields
    ------
    dict
        The colours (:func:`theme_colours`).
    """
    import matplotlib

    colours = theme_colours(viewer)
    style = {
        "figure.facecolor": colours["background"],
        "savefig.facecolor": colours["background"],
        "axes.facecolor": colours["axes"],
        "axes.edgecolor": colours["text"],
        "axes.labelcolor": colours["text"],
        "axes.titlecolor": colours["text"],
        "text.color": colours["text"],
        "xtick.color": colours["text"],
        "ytick.color": colours["text"],
        "grid.color": colours["grid"],
        "legend.facecolor": colours["axes"],
        "legend.edgecolor": colours["grid"],
        "legend.labelcolor": colours["text"],
    }
    if figure is not None:
        figure.set_facecolor(colours["background"])
    with matplotlib.rc_context(style):  # type: ignore[arg-type]  # its keys are rcParams
        yield colours


def style_figure(figure: Any, viewer: Any) -> None:
    """Give a figure (not its axes) napari's theme background."""
    figure.set_facecolor(theme_colours(viewer)["background"])


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
