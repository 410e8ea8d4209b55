"""The pixel inspector: click a pixel, see its colours over time as the model sees them.

Plots are embedded matplotlib (Qt backend) rather than napari-matplotlib: the inspector
draws on clicks, not on layer selection, and needs 3-D axes and ellipsoids; matplotlib is
already a dependency of the statistics widget, so no other package is needed.
"""

import contextlib
import threading
import time
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import CheckBox, Container, Label, PushButton, create_widget
from napari.layers import Image
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Signal

from ..core._files import atomic_write
from ..core.frames import as_frames
from ..core.gmm import BackgroundModel
from ..core.inspect import pixel_components, pixel_distance
from ..core.registry import get_method
from . import _pixel_reader
from ._jobs import BackgroundJob
from ._pixel_figure import FIGURE_DPI, PixelPlots, compose, new_figure, plotted_values, render
from ._pixel_reader import ChunkReader, ProcessReader, read_chunk
from ._plots import export_path, theme_colours, write_or_notify
from .layers import FIT_METHODS, layers_from, mask_colour, plugin_meta

#: A press and release this far apart (screen pixels) is a drag (a pan), not a click.
DRAG_PIXELS = 4.0
#: Partial plots of a lazy read are drawn at most this often (seconds).
PARTIAL_DRAW_SECONDS = 1.0
#: Exported plots: inches and dots per inch.
EXPORT_SIZE = (8.0, 9.0)
EXPORT_DPI = 150


def _is_video(layer: Any) -> bool:
    """True for an image with a time axis: (T, Y, X) or (T, Y, X, C)."""
    ndim = layer.data.ndim
    return isinstance(layer, Image) and (ndim == 4 or ndim == 3 and not layer.rgb)


def _frame_shape(layer: Any) -> tuple[int, int]:
    shape = layer.data.shape
    return (int(shape[-3]), int(shape[-2])) if layer.rgb else (int(shape[-2]), int(shape[-1]))


def pixel_trace_steps(
    video: Any,
    y: int,
    x: int,
    model: BackgroundModel | None,
    chunk: int = 16,
    read: ChunkReader | None = None,
) -> Generator[tuple, None, tuple]:
    """Read a pixel's values over time chunk by chunk, scored as the score layer scores them.

    Each chunk of whole frames is read once (a video is decoded frame by frame anyway):
    the pixel's values come from it and, when the model compensates brightness, the
    frames' brightness too, so the scores equal the distance layer's at that pixel.

    Parameters
    ----------
    video : array-like
        ``(T, Y, X[, C])``, numpy or dask.
    y, x : int
        The pixel.
    model : BackgroundModel or None
        The fitted model; None reads values only.
    chunk : int
        Frames per step.
    read : callable, optional
        ``read(start, stop) -> (samples, scores)`` for one chunk (a child process's
        reader); :func:`~._pixel_reader.read_chunk` in this thread when None.

    Yields
    ------
    tuple
        Frames read so far, frames in all, the samples ``(n, C)`` and scores ``(n,)``
        (None without a model) read so far.

    Returns
    -------
    tuple
        ``(samples, scores)`` for the whole clip.
    """
    frames = as_frames(video)
    n = frames.n_frames
    samples = np.empty((n, frames.n_channels), dtype=frames.dtype)
    scores = None if model is None else np.empty(n, dtype=np.float32)
    if read is None:

        def read(start: int, stop: int) -> tuple:
            return read_chunk(video, y, x, start, stop, model)

    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        samples[start:stop], chunk_scores = read(start, stop)
        if scores is not None:
            scores[start:stop] = chunk_scores
        yield stop, n, samples[:stop], None if scores is None else scores[:stop]
    return samples, scores


class FigureView(QObject):
    """Shows a matplotlib figure drawn off the GUI thread.

    Laying out and drawing the inspector's plots (3-D axes, text, legends) takes a few
    hundred milliseconds of the GIL: a render thread sends each description of the
    plots to a child process that lays it out and draws it into an image, and the GUI
    thread only shows it.  Requests made while a drawing is under way are merged: the
    latest wins.

    Parameters
    ----------
    widget : magicgui.widgets.Container
        The widget it belongs to (its width sets the figure's).
    """

    rendered = Signal(object)

    def __init__(self, widget: Any) -> None:
        super().__init__()
        from qtpy.QtWidgets import QLabel, QSizePolicy

        self.label = QLabel()
        self.label.setMinimumHeight(420)
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._widget = widget
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inspector-draw")
        self._next: PixelPlots | None = None
        self._busy = False
        self._guard = threading.Lock()
        self.image: Any = None
        #: The plots whose picture is shown (None before the first).
        self.drawn: PixelPlots | None = None
        self.closed = False
        self.rendered.connect(self._on_rendered)
        self.label.destroyed.connect(self.shutdown)

    def figure_size(self) -> tuple[float, float]:
        """Inches for a figure as wide as the dock, 1.35 times as tall."""
        width = max(self._widget.native.width() - 20, 360)
        return width / FIGURE_DPI, 1.35 * width / FIGURE_DPI

    def request(self, plots: PixelPlots) -> None:
        """Lay out and draw the plots off the GUI thread, then show them."""
        with self._guard:
            self._next = plots
            if self._busy:
                return
            self._busy = True
        self._pool.submit(self._run)

    def _run(self) -> None:
        while True:
            with self._guard:
                plots, self._next = self._next, None
                if plots is None:
                    self._busy = False
                    return
            # Laid out and drawn in a child process: matplotlib holds the GIL for most
            # of the few hundred milliseconds a layout and a drawing take (and so does
            # pickling a laid-out figure), which would stall the GUI thread.
            image = None
            with contextlib.suppress(OSError, EOFError, _pixel_reader.NotReady):
                image = _pixel_reader.draw_plots(plots)
            if image is None:  # no child to draw: here, then
                image = render(plots)
            with contextlib.suppress(RuntimeError):  # the widget is gone
                self.rendered.emit((plots, image))

    def _on_rendered(self, drawn: tuple) -> None:
        from qtpy.QtGui import QImage, QPixmap

        if self.closed:
            return
        self.drawn, image = drawn
        self.image = image
        height, width = image.shape[:2]
        pixels = image.tobytes()  # alive until fromImage copies it
        qimage = QImage(pixels, width, height, 4 * width, QImage.Format.Format_RGBA8888)
        with contextlib.suppress(RuntimeError):  # the label is gone with its widget
            self.label.setPixmap(QPixmap.fromImage(qimage))

    def wait(self, timeout: float = 30.0) -> None:
        """Block until every requested drawing is done (scripts and tests)."""
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            with self._guard:
                if not self._busy:
                    return
            time.sleep(0.005)

    def shutdown(self) -> None:
        """Stop the render thread once its drawing is done."""
        self.closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)


def ask_png_path(parent: Any) -> str:
    """Ask where to save the plot (a Qt dialog; tests replace this function)."""
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getSaveFileName(parent, "Export plot", "", "PNG (*.png)")
    return path


def fitted_model(viewer: Any, video: Any) -> BackgroundModel | None:
    """Return the model of the latest fit of a video layer, if its score layer is there.

    Found by the layers' metadata (which video they came from), not by name: renaming
    either layer keeps the link.
    """
    for layer in reversed(layers_from(viewer, video, "score")):
        model = plugin_meta(layer).get("model")
        if isinstance(model, BackgroundModel):
            return model
    return None


def comparison_masks(viewer: Any, video: Any) -> list[tuple[str, str, Any]]:
    """Return the masks of other methods run on a video: ``(method, label, data)`` each.

    Every registered method's mask layer made from this video (by the metadata the
    methods widget gives its layers, so a renamed layer still counts), in the viewer's
    order; the Fit widget's own GMM mask is left out (the inspector draws the GMM's
    decision from its scores).
    """
    found = []
    for layer in layers_from(viewer, video, "mask"):
        method = str(plugin_meta(layer).get("method"))
        if method in FIT_METHODS:
            continue
        try:
            title = get_method(method).title
        except (KeyError, ValueError):
            title = method
        found.append((method, title, layer.data))
    titles = [title for _, title, _ in found]
    return [  # two runs of one method (a layer renamed, then run again): number them
        (method, title if titles.count(title) == 1 else f"{title} {i + 1}", data)
        for i, (method, title, data) in enumerate(found)
    ]


class InspectorWidget(Container):
    """Click a pixel of the video (or of any layer over it) to see what the model sees.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer to listen to.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self._video: Any = create_widget(annotation=Image, label="video")
        self._video.tooltip = "The video whose pixels you click (an image with a time axis)"
        self._active = CheckBox(
            value=True,
            text="inspect the pixel I click",
            tooltip="When on, a click (not a drag) on the canvas shows that pixel over time",
        )
        self._again = PushButton(
            text="Read again", tooltip="Read and draw the last pixel again (after a refit)"
        )
        self._cancel = PushButton(text="Cancel", tooltip="Stop reading the pixel's history")
        self._export = PushButton(
            text="Export PNG…", enabled=False, tooltip="Save the plots as a PNG image"
        )
        self._status = Label(value="click a pixel (a click, not a drag)")
        self.job = BackgroundJob(self._again, self._cancel, self._status, "Reading pixel history")
        self.extend(
            [
                self._video,
                self._active,
                Container(widgets=[self._again, self._cancel, self._export], layout="horizontal"),
                self.job.bar,
                self._status,
            ]
        )
        self._blank = new_figure((5.0, 7.0))
        self.view = FigureView(self)
        self.view.label.setToolTip(
            "Top: the pixel's colours in every frame, coloured by score, with the model's "
            "components (green: background). Bottom: the score over time, the threshold, "
            "the frames called foreground and the current frame (vertical line)"
        )
        self.native.layout().addWidget(self.view.label)
        self.pixel: tuple[int, int] | None = None
        self._queued: tuple[int, int] | None = None
        #: What is plotted, and its figure once laid out here (see ``figure``).
        self._plots: PixelPlots | None = None
        self._figure_cache: tuple[Any, Any, PixelPlots] | None = None
        self._frame = 0
        self._n_frames = 0
        self._last_partial = 0.0
        self._brightness_cache: tuple = (None, None)
        self.plotted: dict[str, Any] = {}
        self._again.changed.connect(lambda *_: self.pixel and self.inspect(*self.pixel))
        self._cancel.changed.connect(self.job.cancel)
        self._export.changed.connect(self.export_png)
        video: Any = self._video
        video.changed.connect(self._warm_up)
        viewer.layers.events.inserted.connect(self._warm_up)  # a fit's score layer
        self._warm_up()
        viewer.mouse_drag_callbacks.append(self._on_mouse)
        viewer.dims.events.current_step.connect(self._on_frame)
        self.native.destroyed.connect(lambda *_: self._disconnect())

    def _warm_up(self, *_: Any) -> None:
        """Start the drawing process once a video is chosen, and for a lazy one the
        reading process, with the video and its model (once fitted), before the first
        click."""
        layer = self._video.value
        if layer is None or not _is_video(layer):
            return
        lazy = _pixel_reader.worth_a_process(layer.data)
        _pixel_reader.warm_up("draw", *(("read",) if lazy else ()))
        if lazy:
            _pixel_reader.prepare(layer.data, fitted_model(self._viewer, layer))

    def _disconnect(self) -> None:
        self.job.shutdown()
        self.view.shutdown()
        with contextlib.suppress(TypeError, RuntimeError):
            self._viewer.layers.events.inserted.disconnect(self._warm_up)
        if self._on_mouse in self._viewer.mouse_drag_callbacks:
            self._viewer.mouse_drag_callbacks.remove(self._on_mouse)
        with contextlib.suppress(TypeError, RuntimeError):
            self._viewer.dims.events.current_step.disconnect(self._on_frame)

    def _on_mouse(self, viewer: Any, event: Any) -> Any:
        """Inspect on a click: a press and a release without a drag in between.

        A drag pans the view: the press that starts it must not start a read.
        """
        layer = self._video.value
        if not self._active.value or layer is None or event.type != "mouse_press":
            return
        position = tuple(event.position)
        pressed_at = np.asarray(getattr(event, "pos", (0, 0)), dtype=float)
        yield
        while event.type == "mouse_move":
            moved = np.asarray(getattr(event, "pos", pressed_at), dtype=float) - pressed_at
            if np.hypot(*moved[:2]) > DRAG_PIXELS:
                return  # a pan, not a click
            yield
        if event.type == "mouse_release":
            self.click(position)

    def click(self, world_position: tuple) -> Any:
        """Inspect the pixel under a world position (a click on the canvas).

        Parameters
        ----------
        world_position : tuple of float
            The click, in world coordinates.

        Returns
        -------
        superqt.utils.GeneratorWorker or None
            The reading worker for a lazy video, else None.
        """
        layer = self._video.value
        if layer is None:
            return None
        if not _is_video(layer):
            show_info(
                f"'{layer.name}' is a single 2-D image: the pixel inspector shows a pixel "
                "over time, so choose a video (an image with a time axis)"
            )
            return None
        position = np.round(layer.world_to_data(world_position)).astype(int)
        y, x = int(position[-2]), int(position[-1])
        height, width = _frame_shape(layer)
        if 0 <= y < height and 0 <= x < width:
            return self.inspect(y, x)
        return None

    def inspect(self, y: int, x: int) -> Any:
        """Show pixel ``(y, x)`` of the chosen video.

        A video in memory is drawn at once; a lazy one is read in the background, chunk
        of frames by chunk, and drawn as its frames arrive (at most a few times a
        second).  A click during a read cancels it and starts the new one.

        Parameters
        ----------
        y, x : int
            The pixel, in the video's data coordinates.

        Returns
        -------
        superqt.utils.GeneratorWorker or None
            The reading worker for a lazy video, else None.
        """
        layer = self._video.value
        if layer is None:
            show_error("choose the video layer to inspect")
            return None
        if not _is_video(layer):
            show_info(f"'{layer.name}' is a single 2-D image; choose a video to inspect")
            return None
        self.pixel = (y, x)
        self._n_frames = int(layer.data.shape[0])
        model = fitted_model(self._viewer, layer)
        data = layer.data
        if isinstance(data, np.ndarray):
            samples = data[:, y, x].reshape(data.shape[0], -1)
            score = None
            if model is not None:
                correction = self._brightness(model, data)
                score = pixel_distance(model, y, x, samples, correction)
            self._draw(layer, y, x, samples, score, model, complete=True)
            return None
        if self.job.running:
            # Cancel the read under way; the new one starts once it has stopped.
            self._queued = (y, x)
            self.job.cancel()
            self.job.set_status(f"cancelled; reading pixel ({y}, {x}) next…")
            return None
        chunk = int(data.chunks[0][0]) if hasattr(data, "chunks") else 16
        # A lazily decoded video is decoded in a child process: decoding in a thread
        # of this process holds the GIL the GUI thread needs.
        reader = None
        if _pixel_reader.worth_a_process(data):
            reader = ProcessReader(data, y, x, model, int(data.shape[0]))
        steps = pixel_trace_steps(data, y, x, model, chunk=max(1, min(chunk, 64)), read=reader)
        describe = self._describer(layer, y, x, model)

        def job() -> Any:
            # Reading, scoring and describing the plots happen here, off the GUI thread;
            # the drawing child lays them out and draws them, the GUI thread only shows
            # the picture.
            last = 0.0
            try:
                while True:
                    try:
                        done, total, samples, score = next(steps)
                    except StopIteration as stop:
                        samples, score = stop.value
                        return describe(samples, score, True)
                    now = time.perf_counter()
                    if now - last >= PARTIAL_DRAW_SECONDS:
                        last = now
                        yield done, total, describe(samples.copy(), _copy(score), False)
                    else:
                        yield done, total, None
            finally:
                if reader is not None:
                    reader.close()

        worker = self.job.start(
            job,
            total=data.shape[0],
            on_returned=self._show,
            status=f"reading pixel ({y}, {x})…",
            on_yielded=self._show_partial,
        )
        worker.finished.connect(self._start_queued)
        return worker

    def _start_queued(self) -> None:
        queued, self._queued = self._queued, None
        if queued is not None and not self.job.closed:
            self.inspect(*queued)

    def _brightness(self, model: BackgroundModel | None, data: np.ndarray) -> Any:
        """Each frame's brightness, as the mask layer uses it: found once per video."""
        if model is None:
            return None
        key = (id(model), id(data))
        if self._brightness_cache[0] != key:
            self._brightness_cache = (key, model.brightness(as_frames(data).data))
        return self._brightness_cache[1]

    def _current_frame(self) -> int:
        layer = self._video.value
        try:
            return int(round(float(layer.world_to_data(self._viewer.dims.point)[0])))
        except (AttributeError, IndexError, ValueError, TypeError):
            return int(self._viewer.dims.current_step[0])

    def _on_frame(self, *_: Any) -> None:
        """Move the current-frame marker with the viewer's time slider (redrawn off the
        GUI thread)."""
        self._frame = self._current_frame()
        if self._plots is not None:
            self.view.request(self._plots.at_frame(self._frame))

    def _describer(self, video: Any, y: int, x: int, model: BackgroundModel | None) -> Any:
        """A function that describes the plots of some samples; callable from any thread.

        What it needs from the viewer (the other methods' masks, the theme, the size,
        the frame) is gathered here, on the GUI thread.
        """
        name = video.name
        masks = comparison_masks(self._viewer, video)
        colours = theme_colours(self._viewer)
        size = self.view.figure_size()
        n_total = self._n_frames
        frame = self._current_frame()
        components = pixel_components(model, y, x) if model is not None else None
        threshold = model.threshold if model is not None else None

        def describe(samples: np.ndarray, score: Any, complete: bool) -> tuple:
            plots = PixelPlots(
                size=size,
                name=name,
                y=y,
                x=x,
                samples=samples,
                score=score,
                threshold=threshold,
                components=components,
                others=[
                    (mask_colour(method), title, np.asarray(data[: len(samples), y, x]) == 1)
                    for method, title, data in masks
                ],
                gmm_colour=mask_colour("gmm"),
                n_total=n_total,
                frame=frame,
                colours=colours,
                complete=complete,
            )
            return plotted_values(plots), plots

        return describe

    @property
    def figure(self) -> Any:
        """The plots as a matplotlib figure, for export (laid out here, on first use)."""
        laid_out = self._figure_and_line()
        return self._blank if laid_out is None else laid_out[0]

    @property
    def frame_line(self) -> Any:
        """The figure's current-frame line (None before the first plot)."""
        laid_out = self._figure_and_line()
        return None if laid_out is None else laid_out[1]

    def _figure_and_line(self) -> tuple[Any, Any] | None:
        plots = self._plots
        if plots is None:
            return None
        if self._figure_cache is None or self._figure_cache[2] is not plots:
            figure = new_figure(plots.size)
            line = compose(figure, plots)
            self._figure_cache = (figure, line, plots)
        figure, line, _ = self._figure_cache
        line.set_xdata([self._frame, self._frame])
        return figure, line

    def _show_partial(self, step: tuple) -> None:
        if step[2] is not None:  # (done, total, described plots or None)
            self._show(step[2])

    def _show(self, composed: tuple) -> None:
        """Adopt described plots (GUI thread) and have them drawn off the GUI thread."""
        if self.job.closed:
            return
        self.plotted, plots = composed
        self._frame = self._current_frame()
        self._plots = plots
        self.view.request(plots.at_frame(self._frame))
        self._export.enabled = True
        if plots.complete:
            self.job.set_status(f"pixel ({plots.y}, {plots.x}): {len(plots.samples)} frames")

    def _draw(
        self,
        video: Any,
        y: int,
        x: int,
        samples: np.ndarray,
        score: np.ndarray | None,
        model: BackgroundModel | None,
        complete: bool,
    ) -> None:
        """Describe the plots now (a video in memory) and have them drawn."""
        self._show(self._describer(video, y, x, model)(samples, score, complete))

    def export_png(self, path: str | None = None) -> Path | None:
        """Save the current plot as PNG (asks for a file when no path is given).

        Parameters
        ----------
        path : str, optional
            Destination.

        Returns
        -------
        pathlib.Path or None
            The file written.
        """
        if not self.plotted:
            return None
        path = export_path(path, lambda: ask_png_path(self.native))
        return write_or_notify(path, lambda: atomic_write(Path(path), self._save_png))

    def _save_png(self, file: Any) -> None:
        """Save at a printable size (``EXPORT_SIZE`` at ``EXPORT_DPI``), not the dock's."""
        figure = self.figure
        size = figure.get_size_inches().copy()
        figure.set_size_inches(*EXPORT_SIZE, forward=False)
        try:
            figure.savefig(file, format="png", dpi=EXPORT_DPI)
        finally:
            figure.set_size_inches(*size, forward=False)


def _copy(array: Any) -> Any:
    return None if array is None else array.copy()
