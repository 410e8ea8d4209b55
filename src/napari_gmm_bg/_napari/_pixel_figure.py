"""The pixel inspector's figure, laid out from plain data (no napari, no Qt, no model).

A description of a pixel's plots (:class:`PixelPlots`, small arrays and numbers) is
laid out and drawn by the drawing child; napari's process lays it out only when the
figure itself is asked for (an export).  Laying out a matplotlib figure, or pickling
one, holds the GIL (and so stalls the GUI thread) for a few hundred milliseconds.
"""

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ._plots import style_figure

#: Dots per inch of the plots in the dock.
FIGURE_DPI = 100


@dataclass(frozen=True)
class PixelPlots:
    """What the inspector plots for one pixel.

    Parameters
    ----------
    size : tuple of float
        The figure's size, inches.
    name : str
        The video layer's name.
    y, x : int
        The pixel.
    samples : numpy.ndarray
        ``(n, C)`` its values in the frames read so far.
    score : numpy.ndarray or None
        ``(n,)`` its distances (None without a model).
    threshold : float or None
        The model's threshold.
    components : PixelComponents or None
        The model's components at the pixel.
    others : list of (str, str, numpy.ndarray)
        The other methods' decisions: ``(colour, title, foreground)`` each.
    gmm_colour : str
        The colour of the GMM's foreground marks.
    n_total : int
        Frames in the clip.
    frame : int
        The current frame (the vertical line).
    colours : dict
        napari's theme (``_plots.theme_colours``).
    complete : bool
        False while the pixel is still being read.
    """

    size: tuple[float, float]
    name: str
    y: int
    x: int
    samples: np.ndarray
    score: np.ndarray | None
    threshold: float | None
    components: Any
    others: list
    gmm_colour: str
    n_total: int
    frame: int
    colours: dict
    complete: bool

    def at_frame(self, frame: int) -> "PixelPlots":
        """The same plots with the current-frame line at ``frame``."""
        return replace(self, frame=int(frame))


def new_figure(size: tuple[float, float]) -> Any:
    """A matplotlib figure on an Agg canvas: drawable from any thread, no Qt involved."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=FIGURE_DPI)
    FigureCanvasAgg(figure)
    # A fixed layout: tight_layout on every click costs more than the plot itself.
    figure.subplots_adjust(left=0.14, right=0.9, top=0.95, bottom=0.07, hspace=0.3)
    return figure


def render(plots: PixelPlots) -> np.ndarray:
    """Lay out and draw the plots; their RGBA pixels (the drawing child calls this)."""
    figure = new_figure(plots.size)
    compose(figure, plots)
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba()).copy()


def draw_once() -> None:
    """Draw a small plot, so that the first real drawing does not also pay for
    matplotlib's first-use set-up (fonts, 3-D axes): some 0.1 s of the first click."""
    colours = {"background": "#23242b", "axes": "#2e333e", "text": "#f0f1f2", "grid": "#61696e"}
    render(
        PixelPlots(
            size=(3.7, 5.0), name="", y=0, x=0, samples=np.zeros((2, 3), np.uint8),
            score=np.zeros(2, np.float32), threshold=1.0, components=None, others=[],
            gmm_colour="#ff0000", n_total=2, frame=0, colours=colours, complete=False,
        )
    )  # fmt: skip


def _ellipsoid(mean: np.ndarray, std: np.ndarray, n: int = 12) -> tuple:
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, n), np.linspace(0, np.pi, n // 2))
    return (
        mean[0] + 2 * std[0] * np.cos(u) * np.sin(v),
        mean[1] + 2 * std[1] * np.sin(u) * np.sin(v),
        mean[2] + 2 * std[2] * np.cos(v),
    )


def plotted_values(plots: PixelPlots) -> dict:
    """The numbers the plots show: the pixel, its samples and scores, the threshold,
    the GMM's and the other methods' foreground frames."""
    gmm = plots.score > plots.threshold if plots.score is not None else None
    return {
        "pixel": (plots.y, plots.x),
        "samples": plots.samples,
        "score": plots.score,
        "threshold": plots.threshold,
        "gmm_foreground": gmm,
        "masks": {title: foreground for _, title, foreground in plots.others},
    }


def compose(figure: Any, plots: PixelPlots) -> Any:
    """Lay out the inspector's two plots in ``figure``, in napari's theme; returns the
    current-frame line.

    The other methods' decisions at the pixel are rows of marks under the GMM's, each
    in that method's mask colour.
    """
    samples, score, threshold, comps = (
        plots.samples,
        plots.score,
        plots.threshold,
        plots.components,
    )
    colours = plots.colours
    frames = np.arange(len(samples))
    gmm = plotted_values(plots)["gmm_foreground"]
    fg = colours["text"]
    colour = score if score is not None else frames
    colour_label = "distance (standard deviations)" if score is not None else "frame"
    vmax = None
    if score is not None and threshold is not None:
        vmax = min(float(np.max(score)), 4 * threshold)
    if samples.shape[1] == 3:
        ax = figure.add_subplot(211, projection="3d")
        points = ax.scatter(*samples.T.astype(float), c=colour, cmap="magma", s=8, vmax=vmax)
        ax.set_xlabel("R")
        ax.set_ylabel("G")
        ax.set_zlabel("B")
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.set_pane_color(colours["axes"])
        if comps is not None:
            for k in range(len(comps.weights)):
                if comps.weights[k] <= 0:
                    continue
                background = comps.background[k]
                ax.plot_wireframe(
                    *_ellipsoid(comps.means[k], comps.stds[k]),
                    color="tab:green" if background else "tab:gray",
                    linewidth=0.8 if background else 0.4,
                    alpha=0.7,
                    label=f"{'background' if background else 'other'} w={comps.weights[k]:.2f}",
                )
            ax.legend(fontsize=7, loc="upper left")
    else:
        ax = figure.add_subplot(211)
        points = ax.scatter(frames, samples[:, 0], c=colour, cmap="magma", s=8, vmax=vmax)
        ax.set_xlabel("frame")
        ax.set_ylabel("value")
        if comps is not None:
            for k in range(len(comps.weights)):
                low = comps.means[k, 0] - 2 * comps.stds[k, 0]
                high = comps.means[k, 0] + 2 * comps.stds[k, 0]
                ax.axhspan(
                    low,
                    high,
                    alpha=0.2,
                    color="tab:green" if comps.background[k] else "tab:gray",
                )
    figure.colorbar(points, ax=ax, label=colour_label, shrink=0.7)
    title = f"{plots.name}: pixel (y={plots.y}, x={plots.x})"
    ax.set_title(title + ("" if plots.complete else " (reading…)"), fontsize=9)
    line = figure.add_subplot(212)
    if score is not None:
        assert threshold is not None and gmm is not None  # a model scored the pixel
        line.plot(frames, score, color="tab:purple", linewidth=0.8, label="distance")
        line.axhline(
            threshold,
            color=fg,
            linestyle="--",
            linewidth=0.8,
            label=f"threshold {threshold:g}",
        )
        # Distances above the threshold are foreground; each method's foreground frames
        # are a row of marks above the curve.
        top = max(min(float(np.max(score)), 8 * threshold), 2 * threshold)
        gap = 0.08 * top
        rows = [(plots.gmm_colour, "GMM", gmm), *plots.others]
        line.set_ylim(0, top + gap * (len(rows) + 1))
        for row, (mark_colour, title, foreground) in enumerate(rows):
            line.scatter(
                frames[: len(foreground)][foreground],
                np.full(int(foreground.sum()), top + gap * (row + 1)),
                marker="|",
                color=mark_colour,
                label=f"{title} foreground",
            )
        line.legend(fontsize=7, loc="center right")
    else:
        line.text(
            0.5,
            0.5,
            "fit a model to see distances",
            ha="center",
            transform=line.transAxes,
        )
    line.set_xlabel("frame")
    line.set_xlim(0, max((plots.n_total or len(samples)) - 1, 1))
    frame_line = line.axvline(plots.frame, color=fg, linewidth=0.8, alpha=0.6, label="_frame")
    # The figure's own artists take the theme: no rcParams (process-wide) are touched,
    # for this runs in the inspector's worker thread.
    style_figure(figure, colours)
    return frame_line
