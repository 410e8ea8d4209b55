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


def style_figure(figure: Any, colours: dict[str, str]) -> None:
    """Give a drawn figure napari's theme, artist by artist.

    Only the figure's own objects change (no ``rcParams``, which are process-wide and
    not safe to change from the inspector's worker thread).  What still has
    matplotlib's default colour is recoloured; a colour a plot chose is kept.  Call it
    after the plots are laid out (ticks made later keep the axis's tick colours).

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        The figure, its axes, legends and colour bars made.
    colours : dict
        From :func:`theme_colours`.
    """
    text, axes_colour, grid = colours["text"], colours["axes"], colours["grid"]
    figure.set_facecolor(colours["background"])
    for label in figure.texts:
        _recolour(label, text)
    for ax in figure.axes:
        if same_colour(ax.get_facecolor(), "white"):
            ax.set_facecolor(axes_colour)
        for spine in ax.spines.values():
            if same_colour(spine.get_edgecolor(), "black"):
                spine.set_edgecolor(text)
        for title in (ax.title, ax._left_title, ax._right_title):
            _recolour(title, text)
        for label in ax.texts:
            _recolour(label, text)
        axes_3d = hasattr(ax, "zaxis")
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis) if axes_3d else (ax.xaxis, ax.yaxis):
            _recolour(axis.label, text)
            _recolour(axis.get_offset_text(), text)
            axis.set_tick_params(which="both", color=text, labelcolor=text, grid_color=grid)
            if axes_3d:
                axis.set_pane_color(axes_colour)
                axis.line.set_color(text)
        legend = ax.get_legend()
        if legend is not None:
            legend.get_frame().set_facecolor(axes_colour)
            legend.get_frame().set_edgecolor(grid)
            for label in (*legend.get_texts(), legend.get_title()):
                _recolour(label, text)


def same_colour(a: Any, b: Any) -> bool:
    """Whether two matplotlib colours are the same (alpha included)."""
    from matplotlib.colors import to_rgba

    return bool(to_rgba(a) == to_rgba(b))


def _recolour(label: Any, colour: str) -> None:
    """Recolour a text artist still in matplotlib's default (black) text colour."""
    if same_colour(label.get_color(), "black"):
        label.set_color(colour)


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
