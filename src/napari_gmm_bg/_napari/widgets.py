"""The "Fit GMM background" dock widget.

The widget gathers settings, runs the core's fit in a generator worker (napari progress
bar, Cancel) and turns the result into layers.  It holds no maths: that is all in
:mod:`napari_gmm_bg.core`.
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSlider,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
    create_widget,
)
from napari.layers import Image, Labels, Layer, Shapes
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, QTimer, Signal

from ..core import (
    DEFAULT_DISTANCE,
    BackgroundModel,
    FitParameters,
    MaskCleanup,
    fit_background_steps,
    load_model,
)
from ..core._numba_cache import FIRST_RUN_MESSAGE, announce_compilation
from ..core.cluster import configured_client
from ..core.gmm import MAX_CONSENSUS_RADIUS, model_result
from ..core.interface import MethodResult
from ..core.labels import SHADOW_MODES
from ..core.online import OnlineSettings, online_result, run_online_steps
from ..core.warmup import WarmUp, start_warm_up
from ._controls import FrameRange, show_special_value
from ._jobs import BackgroundJob
from ._plots import embed_figure, export_path, style_figure, theme_colours
from .layers import (
    META_KEY,
    Placement,
    contrast_limits_of,
    fit_layer_data,
    lazy_frames,
    mask_data,
    plugin_meta,
    result_names,
    set_layer,
    source_id,
    video_frames,
)

#: Milliseconds a mask setting must stay still before the mask is recomputed.
SETTLE_MS = 250


@dataclass
class FitResult:
    """A fit's result and what it was fitted on, kept to redraw the mask without refitting."""

    method_result: MethodResult
    source: Image
    frames: da.Array

    @property
    def model(self) -> Any:
        """The fitted model (offline) or the on-line run's result."""
        return self.method_result.model

    @property
    def frame_shape(self) -> tuple[int, int]:
        """``(Y, X)`` of the video."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])


def region_mask(layer: Layer | None, frame_shape: tuple[int, int]) -> np.ndarray | None:
    """Rasterise a Labels or Shapes layer into a ``(Y, X)`` boolean region.

    Parameters
    ----------
    layer : napari.layers.Labels, napari.layers.Shapes or None
        Labels: non-zero pixels (a stack is projected over time).  Shapes: the union of
        the shapes, using their last two coordinates.  Both in the video's pixel grid.
    frame_shape : tuple of int
        ``(Y, X)`` of the video.

    Returns
    -------
    numpy.ndarray or None
        The region, or None for no layer.

    Raises
    ------
    ValueError
        If the layer does not cover the video's frame, or holds no shape.
    """
    if layer is None:
        return None
    if isinstance(layer, Labels):
        data = np.asarray(layer.data)
        if data.shape[-2:] != tuple(frame_shape):
            raise ValueError(
                f"region layer '{layer.name}' is {data.shape[-2:]} pixels; "
                f"the video's frames are {tuple(frame_shape)}"
            )
        mask = data != 0
        return mask.reshape(-1, *frame_shape).any(axis=0)
    if isinstance(layer, Shapes):
        if len(layer.data) == 0:
            raise ValueError(f"region layer '{layer.name}' holds no shapes")
        flat = Shapes(
            [np.asarray(vertices)[:, -2:] for vertices in layer.data],
            shape_type=list(layer.shape_type),
        )
        return flat.to_masks(mask_shape=frame_shape).any(axis=0)
    raise ValueError(f"region layer '{layer.name}' must be a Labels or Shapes layer")


#: Frames scored after a fit for the threshold's histogram.
HISTOGRAM_FRAMES = 8


def score_histogram(scores: np.ndarray, threshold: float, bins: int = 80) -> dict:
    """The distribution of scores the threshold cuts, and a slider range around it.

    Parameters
    ----------
    scores : numpy.ndarray
        Scores (distances, standard deviations) of some frames.
    threshold : float
        The current threshold.
    bins : int
        Histogram bins.

    Returns
    -------
    dict
        ``counts``, ``edges`` and ``range`` (low, high) for the slider.
    """
    finite = scores[np.isfinite(scores)].astype(np.float64)
    low = 0.0
    if finite.size == 0:
        high = 4.0 * threshold
        return {
            "counts": np.zeros(bins),
            "edges": np.linspace(low, high, bins + 1),
            "range": (low, high),
        }
    # Up to where the foreground tail thins out, at least twice the threshold.
    high = min(max(float(np.percentile(finite, 99.5)), 2.0 * threshold), 10.0 * threshold)
    counts, edges = np.histogram(np.clip(finite, low, high), bins=bins, range=(low, high))
    return {"counts": counts, "edges": edges, "range": (low, high)}


#: Seconds a fit waits for the background warm-up's kernels at most, then compiles them.
WARM_UP_WAIT = 300.0


def _warm(warm_up: WarmUp | None, parts: tuple[str, ...], total: int, status: str) -> Any:
    """Wait, in the worker, for the warm-up to cache the kernels of ``parts`` (loading
    them is then instant); Cancel is answered every 0.1 s meanwhile."""
    if warm_up is None or not warm_up.pending(parts):
        return
    yield FIRST_RUN_MESSAGE
    deadline = time.monotonic() + WARM_UP_WAIT
    while not warm_up.wait(parts, timeout=0.1) and time.monotonic() < deadline:
        yield 0, total
    yield status


def _fit_job(
    steps: Any,
    warm_up: WarmUp | None = None,
    parts: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
    total: int = 1,
    status: str = "",
    say: Any = None,
) -> Any:
    """Worker body: finish the fit, then score a few learning frames for the display range
    and the threshold's histogram.

    Each stage first waits for the warm-up to cache the kernels it needs (``parts``:
    those of the fit, those of the scoring); a kernel still compiled here is announced
    through ``say``.
    """
    with announce_compilation(say if say is not None else lambda message: None):
        yield from _warm(warm_up, parts[0], total, status)
        result = yield from steps
        yield from _warm(warm_up, parts[1], total, status)
        return _scored(result)


def _scored(result: Any) -> tuple:
    score = result.score()
    n = len(score)
    picks = np.unique(np.linspace(0, n - 1, min(HISTOGRAM_FRAMES, n)).astype(int))
    sample = np.stack([np.asarray(score[int(t)]) for t in picks])
    limits = contrast_limits_of(sample[len(sample) // 2], result.threshold)
    return result, limits, score_histogram(sample, float(result.threshold))


def _online_steps(frames: da.Array, settings: OnlineSettings) -> Any:
    result = yield from run_online_steps(frames, settings)
    return online_result(result)


def _offline_steps(frames: da.Array, client: Any, settings: dict) -> Any:
    model = yield from fit_background_steps(frames, client=client, **settings)
    return model_result(model, frames)


class _Messages(QObject):
    """Carries a line of status from the worker thread to the GUI thread."""

    said = Signal(str)


def ask_model_path(parent: Any, save: bool) -> str:
    """Ask the user for a model file (a Qt dialog; tests replace this function)."""
    from qtpy.QtWidgets import QFileDialog

    caption = "Save GMM model" if save else "Load GMM model"
    filter_ = "GMM model (*.npz)"
    if save:
        path, _ = QFileDialog.getSaveFileName(parent, caption, "", filter_)
    else:
        path, _ = QFileDialog.getOpenFileName(parent, caption, "", filter_)
    return path


class FitWidget(Container):
    """Fit a per-pixel Gaussian mixture to a video layer and show what moves.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers are read and written.
    """

    _video: Any  # a layer choice (create_widget is typed as a bare Widget)

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self._video: Any = create_widget(annotation=Image, label="video")
        self._video.tooltip = "The video to model: an image layer with a time axis"
        self._components = SpinBox(
            value=FitParameters.n_components,
            min=1,
            max=8,
            label="components",
            tooltip="Colours each pixel may take (Gaussians per pixel): 3 suits most scenes; "
            "more for flickering or waving backgrounds",
        )
        self._learning_frames = SpinBox(
            value=FitParameters.learning_frames,
            min=2,
            max=100_000,
            label="learning frames",
            tooltip="How many frames, spread over the clip, the model learns the "
            "background from: more is slower and steadier",
        )
        self._range = FrameRange("learn from a frame range only")
        self._range.enabled.tooltip = (
            "Learn the background from part of the clip only (e.g. frames without people)"
        )
        self._range.start.tooltip = "First frame to learn from"
        self._range.stop.tooltip = "Learn from frames before this one"
        self._region = ComboBox(
            choices=self._region_choices,
            nullable=True,
            value=None,
            label="region",
            tooltip="Optional Labels or Shapes layer: nothing outside it is foreground",
        )
        self._iterations = SpinBox(
            value=FitParameters.max_iter,
            min=1,
            max=500,
            label="EM iterations",
            tooltip="Refinement passes of the fit: 10 is plenty, more is slower",
        )
        self._mode = ComboBox(
            choices=["offline", "online"],
            value="offline",
            label="mode",
            tooltip="offline: learn once from the clip, then score every frame (best for a "
            "recorded clip). online: learn while playing, like MOG2 (follows slow changes)",
        )
        self._history = SpinBox(
            value=OnlineSettings.history,
            min=1,
            max=10**7,
            label="history",
            visible=False,
            tooltip="On-line mode: how many recent frames the model remembers",
        )
        self._absorb_after = SpinBox(
            value=FitParameters.absorb_after,
            min=0,
            max=10**7,
            label="absorb after",
            tooltip="Offline: something that arrives and stays longer than this many frames "
            "(a bag left, a person who sits down) becomes background.  never: it stays "
            "foreground as long as it stays",
        )
        show_special_value(self._absorb_after, "never")
        self._consensus_radius = SpinBox(
            value=FitParameters.consensus_radius,
            min=0,
            max=MAX_CONSENSUS_RADIUS,
            label="consensus radius",
            tooltip="A pixel whose colour a neighbour's background explains, within this "
            "many pixels, is background where the frames show it helps (swaying leaves, "
            "water): 1 by default, 2 for a shaking camera, 0 off (faster on-line)",
        )
        self._compensate = CheckBox(
            value=FitParameters.compensate_brightness,
            text="compensate global brightness (exposure changes, clouds)",
            tooltip="Score each frame as if it were as bright as the background, so a "
            "camera's exposure change or a cloud does not make the whole frame foreground",
        )
        self._shadows = ComboBox(
            choices=list(SHADOW_MODES),
            value=FitParameters.shadows,
            label="shadows",
            tooltip="off: shadows are foreground like anything else. show: shadows get "
            "their own grey label. background: shadows are not foreground",
        )
        self._threshold = FloatSpinBox(
            value=DEFAULT_DISTANCE,
            min=0.05,
            max=1e3,
            step=0.05,
            label="threshold",
            tooltip="A pixel is foreground when its colour is farther than this from every "
            "background colour, in standard deviations of that colour (at least 10 grey "
            "levels): higher finds less, lower finds more",
        )
        self._threshold.native.setKeyboardTracking(False)  # no redraw per keystroke
        self._slider = FloatSlider(
            value=DEFAULT_DISTANCE,
            min=0.0,
            max=4.0 * DEFAULT_DISTANCE,
            step=0.05,
            label="",
            readout=False,
            tooltip="Drag to change the threshold; the mask is redrawn once you stop. "
            "The histogram below shows the learning frames' scores",
        )
        defaults = MaskCleanup()
        self._median = SpinBox(
            value=-1,
            min=-1,
            max=61,
            step=1,
            label="median filter",
            tooltip="Smooth the mask with a median filter this wide (pixels, odd; 0 off): "
            "removes speckle.  auto: 5% of the frame's size (13 at 320x240)",
        )
        show_special_value(self._median, "auto")  # at -1: sized to the frame
        self._opening = SpinBox(
            value=defaults.opening,
            min=0,
            max=31,
            label="opening",
            tooltip="Remove foreground specks thinner than this (pixels; 0 off)",
        )
        self._closing = SpinBox(
            value=defaults.closing,
            min=0,
            max=31,
            label="closing",
            tooltip="Fill holes and gaps in objects narrower than this (pixels; 0 off)",
        )
        self._min_area = SpinBox(
            value=defaults.min_area,
            min=0,
            max=10**6,
            label="min blob area",
            tooltip="Drop foreground blobs smaller than this many pixels (0 keeps all)",
        )
        self._fit_button = PushButton(
            text="Fit", tooltip="Learn the background of the video and show its mask"
        )
        self._cancel_button = PushButton(
            text="Cancel", tooltip="Stop the fit; no layer is created or changed"
        )
        self._save_button = PushButton(
            text="Save model…",
            enabled=False,
            tooltip="Save the fitted model (.npz) to apply it later without refitting",
        )
        self._load_button = PushButton(
            text="Load model…", tooltip="Apply a saved model (.npz) to the chosen video"
        )
        self._status = Label(value="")
        self.job = BackgroundJob(
            self._fit_button, self._cancel_button, self._status, "Fitting GMM background"
        )
        self._advanced: Container[Any] = Container(
            widgets=[
                self._history,
                self._components,
                self._learning_frames,
                *self._range.widgets,
                self._iterations,
                self._absorb_after,
                self._consensus_radius,
                self._compensate,
                self._shadows,
                self._median,
                self._opening,
                self._closing,
                self._min_area,
            ]
        )
        self.extend(
            [
                self._video,
                self._mode,
                self._region,
                self._threshold,
                self._slider,
                Container(widgets=[self._fit_button, self._cancel_button], layout="horizontal"),
                self.job.bar,
                self._status,
                Container(widgets=[self._save_button, self._load_button], layout="horizontal"),
            ]
        )
        self.histogram_figure, self.histogram_canvas = embed_figure(self, (4, 1.1), 90)
        # Under the slider: the distribution it cuts.
        layout = self.native.layout()
        layout.removeWidget(self.histogram_canvas)
        layout.insertWidget(5, self.histogram_canvas)
        self.histogram_canvas.setMaximumHeight(110)
        self.histogram_canvas.setToolTip(
            "How the learning frames' pixels score (distance from their background, in "
            "standard deviations): the background is the tall hump on the left; pixels "
            "right of the line (the threshold) are foreground"
        )
        self.histogram: dict | None = None
        self._threshold_line: Any = None
        self._draw_histogram()
        from superqt import QCollapsible

        self.advanced = QCollapsible("Advanced settings")
        self.advanced.setToolTip("Model size, learning frames, shadows and mask clean-up")
        self.advanced.addWidget(self._advanced.native)
        self.advanced.collapse(animate=False)
        layout.insertWidget(6, self.advanced)
        self.result: FitResult | None = None
        self._fitting: Image | None = None
        self._names_of: dict[int, dict[str, str]] = {}
        # The mask is redrawn once a setting has settled, not on every step of a drag.
        self._settle = QTimer()
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(self._redraw_mask)
        # Relabelling (an on-line run re-thresholds and cleans every frame) runs in a
        # worker; one at a time, and only the latest request's mask is shown.
        self._redraw_worker: Any = None
        self._redraw_next: tuple | None = None
        self._redraw_generation = 0

        self._mode.changed.connect(self._on_mode)
        self._video.changed.connect(self._on_video)
        self._slider.changed.connect(self._on_slider)
        self._threshold.changed.connect(self._on_threshold)
        for widget in (self._region, self._median, self._opening, self._shadows):
            widget.changed.connect(self._schedule_redraw)
        for widget in (self._closing, self._min_area):
            widget.changed.connect(self._schedule_redraw)
        self._fit_button.changed.connect(self.fit)
        self._cancel_button.changed.connect(self.job.cancel)
        self._save_button.changed.connect(self.save_model)
        self._load_button.changed.connect(self.load_model)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        self.native.destroyed.connect(lambda *_: self.job.shutdown())
        self._on_video(self._video.value)
        # A kernel compiled in the worker says so here (from the worker's thread).
        self._messages = _Messages()
        self._messages.said.connect(self._on_job_message)
        #: The kernels' background compilation (None when they are cached already):
        #: started now, so that they are ready, or nearly, when Fit is first clicked.
        self.warm_up = start_warm_up()

    @property
    def worker(self) -> Any:
        """The running fit's worker, or None."""
        return self.job.worker

    # --- choices and small reactions ------------------------------------------------
    def _region_choices(self, _widget: Any = None) -> list[tuple[str, Layer]]:
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Labels | Shapes) and not _is_result_layer(layer)
        ]

    def _on_mode(self, mode: str) -> None:
        online = mode == "online"
        self._history.visible = online
        for widget in (self._learning_frames, self._iterations, self._absorb_after):
            widget.visible = not online
        # Each mode's own default (the same today; the two are chosen separately).
        self._consensus_radius.value = (
            OnlineSettings.consensus_radius if online else FitParameters.consensus_radius
        )
        self._range.set_available(not online)

    def _on_video(self, layer: Image | None) -> None:
        if layer is None or self.result is not None and self.result.source is layer:
            return
        n_frames = layer.data.shape[0] if layer.data.ndim >= 3 else 1
        self._range.stop.value = max(1, n_frames)
        self._threshold.value = DEFAULT_DISTANCE

    def _on_layer_removed(self, event: Any) -> None:
        if self._fitting is not None and event.value is self._fitting and self.job.running:
            self.job.cancel()
            self.job.set_status(f"'{event.value.name}' was removed: fit cancelled")
        if self.result is not None and event.value is self.result.source:
            self.result = None
            self._save_button.enabled = False

    # --- threshold ---------------------------------------------------------------------
    def _on_slider(self, value: float) -> None:
        if abs(float(self._threshold.value) - float(value)) > 1e-9:
            self._threshold.value = float(value)

    def _on_threshold(self, value: float) -> None:
        low, high = self._slider.min, self._slider.max
        if not low <= value <= high:  # a typed value beyond the slider: widen it
            self._slider.min, self._slider.max = min(low, value), max(high, value)
        if abs(float(self._slider.value) - float(value)) > 1e-9:
            self._slider.value = float(value)
        self._move_threshold_line(float(value))
        self._schedule_redraw()

    def _schedule_redraw(self, *_: Any) -> None:
        """Redraw the mask once the settings have been still for ``SETTLE_MS``."""
        self._settle.start()

    def settle(self, wait: bool = True, timeout: float = 120.0) -> None:
        """Redraw the mask now if a settings change is waiting (tests, scripts).

        Parameters
        ----------
        wait : bool
            Also wait (processing Qt events) until the new mask is shown.
        timeout : float
            Seconds to wait at most.
        """
        if self._settle.isActive():
            self._settle.stop()
            self._redraw_mask()
        if wait:
            from qtpy.QtWidgets import QApplication

            end = time.perf_counter() + timeout
            while self.redrawing and time.perf_counter() < end:
                QApplication.processEvents()
                time.sleep(0.002)

    @property
    def redrawing(self) -> bool:
        """True while a mask redraw waits to settle, waits, or runs."""
        return bool(
            self._settle.isActive()
            or self._redraw_worker is not None
            or self._redraw_next is not None
        )

    def _draw_histogram(self) -> None:
        figure = self.histogram_figure
        colours = theme_colours(self._viewer)
        figure.clear()
        ax = figure.add_axes((0.02, 0.3, 0.96, 0.68))
        ax.set_yticks([])
        ax.tick_params(labelsize=7)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        hist = self.histogram
        if hist is None:
            ax.text(
                0.5,
                0.5,
                "fit to see the scores the threshold cuts",
                ha="center",
                va="center",
                fontsize=7,
                transform=ax.transAxes,
            )
            ax.set_xticks([])
            self._threshold_line = None
        else:
            edges = hist["edges"]
            counts = np.sqrt(hist["counts"])  # the foreground tail stays visible
            ax.bar(
                edges[:-1],
                counts,
                width=np.diff(edges),
                align="edge",
                color=colours["text"],
                alpha=0.55,
                linewidth=0,
            )
            ax.set_xlim(*hist["range"])
            ax.set_xlabel("distance, standard deviations (sqrt count)", fontsize=7, labelpad=1)
            self._threshold_line = ax.axvline(
                float(self._threshold.value), color="#ff2bd6", linewidth=1.5
            )
        style_figure(figure, colours)
        self.histogram_canvas.draw_idle()

    def _move_threshold_line(self, value: float) -> None:
        if self._threshold_line is not None:
            self._threshold_line.set_xdata([value, value])
            self.histogram_canvas.draw_idle()

    def _show_histogram(self, hist: dict) -> None:
        self.histogram = hist
        low, high = hist["range"]
        value = float(self._threshold.value)
        self._slider.min, self._slider.max = min(low, value), max(high, value)
        self._slider.value = value
        self._draw_histogram()

    # --- settings --------------------------------------------------------------------
    def cleanup(self) -> MaskCleanup:
        """Return the clean-up the widget's settings describe."""
        median = int(self._median.value)
        return MaskCleanup(
            median=None if median < 0 else median if median % 2 else max(median - 1, 0),
            opening=int(self._opening.value),
            closing=int(self._closing.value),
            min_area=int(self._min_area.value),
        )

    def _settings(self) -> dict:
        return {
            "n_components": int(self._components.value),
            "learning_frames": int(self._learning_frames.value),
            "frame_range": self._range.value,
            "max_iter": int(self._iterations.value),
            "absorb_after": int(self._absorb_after.value),
            "consensus_radius": int(self._consensus_radius.value),
            "threshold": float(self._threshold.value),
            "cleanup": self.cleanup(),
            "compensate_brightness": bool(self._compensate.value),
            "shadows": self._shadows.value,
        }

    # --- fitting ---------------------------------------------------------------------
    def fit(self, layer: Any = None) -> Any:
        """Start fitting the chosen (or given) video layer in a background worker.

        Parameters
        ----------
        layer : napari.layers.Layer, optional
            The video; the widget's choice when None.

        Returns
        -------
        superqt.utils.GeneratorWorker or None
            The running worker, or None when the input was refused (a notification says
            why).
        """
        if not isinstance(layer, Layer):
            layer = self._video.value
        if self.job.running:
            show_info("a fit is already running; cancel it first")
            return None
        try:
            frames, steps, (_, total) = self._start_fit(layer)
        except ValueError as exc:
            show_error(str(exc))
            return None
        self._fitting = layer
        status = f"fitting {layer.name}…"
        online = self._mode.value == "online"
        parts = (("online",), ()) if online else (("fit",), ("score",))
        return self.job.start(
            _fit_job,
            steps,
            self.warm_up,
            parts,
            total,
            status,
            self._messages.said.emit,
            total=total,
            on_returned=lambda result: self._on_fitted(result, layer, frames),
            status=status,
            on_yielded=self._on_job_message,
        )

    def _on_job_message(self, value: Any) -> None:
        if isinstance(value, str):
            self.job.set_status(value)

    def _start_fit(self, layer: Any) -> tuple[da.Array, Any, tuple[int, int]]:
        frames = video_frames(layer)
        client = configured_client()  # a dask cluster set up in this session, if any
        if self._mode.value == "online":
            settings = self._settings()
            steps = _online_steps(
                frames,
                OnlineSettings(
                    history=int(self._history.value),
                    n_components=settings["n_components"],
                    threshold=settings["threshold"],
                    compensate_brightness=settings["compensate_brightness"],
                    shadows=settings["shadows"],
                    cleanup=settings["cleanup"],
                    consensus_radius=settings["consensus_radius"],
                ),
            )
        else:
            steps = _offline_steps(frames, client, self._settings())
        # Runs the cheap checks (frame count, range, settings) here, before any thread.
        first = next(steps)
        return frames, steps, first

    def cancel(self) -> None:
        """Stop a running fit; no layer is created or changed."""
        self.job.cancel()

    def _on_fitted(self, result: tuple, layer: Image, frames: da.Array) -> None:
        self._fitting = None
        if layer not in self._viewer.layers:
            self.job.set_status(f"'{layer.name}' was removed during the fit; nothing added")
            return
        method_result, limits, hist = result
        self.result = FitResult(method_result=method_result, source=layer, frames=frames)
        self._show_result(limits)
        self._show_histogram(hist)
        offline = isinstance(method_result.model, BackgroundModel)
        self._save_button.enabled = offline  # an on-line state is not a reusable model
        self.job.set_status(f"fitted {layer.name} ({'offline' if offline else 'online'})")

    def _adopt_renamed(self, source: Image) -> dict[str, str]:
        """Rename the layers of an earlier fit of this source if the source was renamed,
        so a refit updates them instead of leaving them behind."""
        names = result_names(source.name)
        old = self._names_of.get(id(source), names)
        for kind, name in names.items():
            was = old.get(kind)
            if was != name and was in self._viewer.layers and name not in self._viewer.layers:
                self._viewer.layers[was].name = name
        self._names_of[id(source)] = names
        return names

    def _show_result(self, limits: tuple[float, float]) -> None:
        result = self.result
        if result is None:
            return
        self._adopt_renamed(result.source)
        region = region_mask(self._region.value, result.frame_shape)
        tuples = fit_layer_data(
            result.method_result,
            result.source.name,
            Placement.of(result.source),
            float(self._threshold.value),
            region,
            self.cleanup(),
            self._shadows.value,
            limits,
            identity=source_id(result.source),
        )
        for data, kwargs, layer_type in tuples:
            set_layer(self._viewer, data, kwargs, layer_type)

    def _redraw_mask(self, *_: Any) -> None:
        """Relabel with the current settings, off the GUI thread (the latest wins)."""
        result = self.result
        if result is None:
            return
        name = self._adopt_renamed(result.source)["mask"]
        if name not in self._viewer.layers:
            message = f"the mask layer '{name}' was deleted: press Fit to show it again"
            show_info(message)
            self.job.set_status(message)
            return
        threshold = float(self._threshold.value)
        try:
            region = region_mask(self._region.value, result.frame_shape)
        except ValueError as exc:
            show_error(str(exc))
            return
        self._redraw_generation += 1
        settings = (threshold, region, self.cleanup(), self._shadows.value)
        self._redraw_next = (self._redraw_generation, result, settings)
        if self._redraw_worker is None:
            self._start_redraw()

    def _start_redraw(self) -> None:
        job, self._redraw_next = self._redraw_next, None
        if job is None or self.job.closed:
            return
        generation, result, (threshold, region, cleanup, shadows) = job
        # (an on-line run without shadow flags cannot show shadows: said, not drawn)
        worker = create_worker(
            mask_data,
            result.method_result,
            threshold,
            region,
            cleanup,
            shadows,
            _ignore_errors=True,
        )
        worker.returned.connect(lambda data: self._apply_mask(generation, result, threshold, data))
        worker.errored.connect(lambda exc: self._redraw_failed(generation, exc))
        worker.finished.connect(self._redraw_finished)
        self._redraw_worker = worker
        worker.start()

    def _redraw_finished(self) -> None:
        self._redraw_worker = None
        self._start_redraw()  # the latest request made meanwhile, if any

    def _is_latest(self, generation: int, result: FitResult) -> bool:
        return (
            generation == self._redraw_generation and self.result is result and not self.job.closed
        )

    def _redraw_failed(self, generation: int, exc: Exception) -> None:
        if generation == self._redraw_generation and not self.job.closed:
            show_error(str(exc) if isinstance(exc, ValueError) else repr(exc))

    def _apply_mask(self, generation: int, result: FitResult, threshold: float, data: Any) -> None:
        if not self._is_latest(generation, result):
            return  # a newer setting's mask is on its way: this one is never shown
        name = self._adopt_renamed(result.source)["mask"]
        if name not in self._viewer.layers:
            self.job.set_status(f"the mask layer '{name}' was deleted: press Fit to show it again")
            return
        layer = self._viewer.layers[name]
        layer.data = data
        entry = {**plugin_meta(layer), "source": result.source.name}
        layer.metadata = {**layer.metadata, META_KEY: {**entry, "threshold": threshold}}

    # --- save / load -----------------------------------------------------------------
    def save_model(self, path: str | None = None) -> Path | None:
        """Save the fitted model (asks for a file when no path is given).

        Parameters
        ----------
        path : str, optional
            Destination ``.npz``.

        Returns
        -------
        pathlib.Path or None
            The file written, or None if nothing was saved.
        """
        if self.result is None:
            show_error("nothing to save: fit a model first")
            return None
        if not isinstance(self.result.model, BackgroundModel):
            show_error("an on-line run keeps no reusable model: fit offline to save one")
            return None
        path = export_path(path, lambda: ask_model_path(self.native, True))
        if not path:
            return None
        try:
            written = self.result.model.save(path)
        except OSError as exc:
            show_error(f"cannot save model to {path}: {exc}")
            return None
        self.job.set_status(f"saved model to {written}")
        return written

    def load_model(self, path: str | None = None) -> BackgroundModel | None:
        """Load a saved model and apply it to the chosen video.

        Parameters
        ----------
        path : str, optional
            A ``.npz`` written by Save model (asks for a file when not given).

        Returns
        -------
        BackgroundModel or None
            The model, or None if it could not be used (a notification says why).
        """
        path = export_path(path, lambda: ask_model_path(self.native, False))
        if not path:
            return None
        layer = self._video.value
        try:
            model = load_model(path)
            if layer is None:
                raise ValueError("choose the video layer to apply the model to first")
            frames = lazy_frames(layer.data)
            middle = np.asarray(frames[frames.shape[0] // 2][None])
            limits = contrast_limits_of(model.distance(middle), model.threshold)
        except ValueError as exc:
            show_error(f"cannot use model: {exc}")
            return None
        self.result = None  # no redraw while the settings follow the model
        self._threshold.value = model.threshold
        self._shadows.value = model.params.shadows
        for widget, value in zip(
            (self._median, self._opening, self._closing, self._min_area),
            (
                -1 if model.params.cleanup.median is None else model.params.cleanup.median,
                model.params.cleanup.opening,
                model.params.cleanup.closing,
                model.params.cleanup.min_area,
            ),
            strict=True,
        ):
            widget.value = value
        self.result = FitResult(model_result(model, frames), source=layer, frames=frames)
        self._show_result(limits)
        self._save_button.enabled = True
        self.job.set_status(f"loaded model {Path(path).name} onto {layer.name}")
        return model


def _is_result_layer(layer: Layer) -> bool:
    return "napari-gmm-bg" in layer.metadata
