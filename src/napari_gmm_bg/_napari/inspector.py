"""The pixel inspector: click a pixel, see its colours over time as the model sees them.

Plots are embedded matplotlib (Qt backend) rather than napari-matplotlib: the inspector
draws on clicks, not on layer selection, and needs 3-D axes and ellipsoids; matplotlib is
already a dependency of the statistics widget, so no other package is needed.
"""

from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import CheckBox, Container, Label, PushButton, create_widget
from napari.layers import Image
from napari.utils.notifications import show_error

from ..core._files import atomic_write
from ..core.frames import as_frames
from ..core.gmm import BackgroundModel
from ..core.inspect import pixel_components, pixel_history_steps, pixel_log_likelihood
from ._jobs import BackgroundJob
from ._plots import embed_figure, export_path, write_or_notify
from .layers import result_names


def ask_png_path(parent: Any) -> str:
    """Ask where to save the plot (a Qt dialog; tests replace this function)."""
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getSaveFileName(parent, "Export plot", "", "PNG (*.png)")
    return path


def fitted_model(viewer: Any, video: str) -> BackgroundModel | None:
    """Return the model of the latest fit of a video layer, if its layers are there."""
    name = result_names(video)["loglik"]
    if name not in viewer.layers:
        return None
    return viewer.layers[name].metadata.get("napari-gmm-bg", {}).get("model")


def _ellipsoid(mean: np.ndarray, std: np.ndarray, n: int = 12) -> tuple:
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, n), np.linspace(0, np.pi, n // 2))
    return (
        mean[0] + 2 * std[0] * np.cos(u) * np.sin(v),
        mean[1] + 2 * std[1] * np.sin(u) * np.sin(v),
        mean[2] + 2 * std[2] * np.cos(v),
    )


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
        self._video = create_widget(annotation=Image, label="video")
        self._active = CheckBox(value=True, text="inspect the pixel I click")
        self._again = PushButton(text="Read again")
        self._cancel = PushButton(text="Cancel")
        self._export = PushButton(text="Export PNG…", enabled=False)
        self._status = Label(value="click a pixel")
        self.extend(
            [
                self._video,
                self._active,
                Container(widgets=[self._again, self._cancel, self._export], layout="horizontal"),
                self._status,
            ]
        )
        self.figure, self.canvas = embed_figure(self, (5, 7), 420)
        # A fixed layout: tight_layout on every click costs more than the plot itself.
        self.figure.subplots_adjust(left=0.14, right=0.9, top=0.95, bottom=0.07, hspace=0.3)
        self.job = BackgroundJob(self._again, self._cancel, self._status, "Reading pixel history")
        self.pixel: tuple[int, int] | None = None
        self._brightness_cache: tuple = (None, None)
        self.plotted: dict[str, Any] = {}
        self._again.changed.connect(lambda *_: self.pixel and self.inspect(*self.pixel))
        self._cancel.changed.connect(self.job.cancel)
        self._export.changed.connect(self.export_png)
        viewer.mouse_drag_callbacks.append(self._on_mouse)
        self.native.destroyed.connect(lambda *_: self._disconnect())

    def _disconnect(self) -> None:
        self.job.shutdown()
        if self._on_mouse in self._viewer.mouse_drag_callbacks:
            self._viewer.mouse_drag_callbacks.remove(self._on_mouse)

    def _on_mouse(self, viewer: Any, event: Any) -> None:
        layer = self._video.value
        if not self._active.value or layer is None or event.type != "mouse_press":
            return
        position = np.round(layer.world_to_data(event.position)).astype(int)
        y, x = int(position[-2]), int(position[-1])
        height, width = layer.data.shape[1:3]
        if 0 <= y < height and 0 <= x < width:
            self.inspect(y, x)

    def inspect(self, y: int, x: int) -> Any:
        """Show pixel ``(y, x)`` of the chosen video.

        A video in memory is drawn at once; a lazy one is read in the background, and
        drawn as its frames arrive.

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
        self.pixel = (y, x)
        model = fitted_model(self._viewer, layer.name)
        data = layer.data
        if isinstance(data, np.ndarray):
            samples = data[:, y, x].reshape(data.shape[0], -1)
            correction = self._brightness(model, data)
            self._draw(layer.name, y, x, samples, model, complete=True, correction=correction)
            return None
        if self.job.running:
            self.job.cancel()
            return None
        steps = pixel_history_steps(data, y, x, chunk=16)

        def job() -> Any:
            last = None
            for done, total, partial in steps:
                last = partial
                yield done, total, partial.copy()
            return last

        return self.job.start(
            job,
            total=data.shape[0],
            on_returned=lambda samples: self._draw(
                layer.name, y, x, samples, model, complete=True
            ),
            status=f"reading pixel ({y}, {x})…",
            on_yielded=lambda step: self._draw(layer.name, y, x, step[2], model, complete=False),
        )

    def _brightness(self, model: BackgroundModel | None, data: np.ndarray) -> Any:
        """Each frame's brightness, as the mask layer uses it: found once per video."""
        if model is None:
            return None
        key = (id(model), id(data))
        if self._brightness_cache[0] != key:
            self._brightness_cache = (key, model.brightness(as_frames(data).data))
        return self._brightness_cache[1]

    def _draw(
        self,
        name: str,
        y: int,
        x: int,
        samples: np.ndarray,
        model: BackgroundModel | None,
        complete: bool,
        correction: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        frames = np.arange(len(samples))
        loglik = None
        if model is not None:
            loglik = pixel_log_likelihood(model, y, x, samples, correction)
        threshold = model.threshold if model is not None else None
        mog2_name = f"{name} MOG2 mask"
        mog2 = None
        if mog2_name in self._viewer.layers:
            mog2 = np.asarray(self._viewer.layers[mog2_name].data[: len(samples), y, x]) == 1
        gmm = loglik < threshold if loglik is not None else None
        self.plotted = {
            "pixel": (y, x),
            "samples": samples,
            "loglik": loglik,
            "threshold": threshold,
            "gmm_foreground": gmm,
            "mog2_foreground": mog2,
        }
        self.figure.clear()
        colour = loglik if loglik is not None else frames
        colour_label = "log-likelihood" if loglik is not None else "frame"
        vmin = None if loglik is None else max(float(np.min(loglik)), threshold - 30)
        if samples.shape[1] == 3:
            ax = self.figure.add_subplot(211, projection="3d")
            points = ax.scatter(*samples.T.astype(float), c=colour, cmap="magma", s=8, vmin=vmin)
            ax.set_xlabel("R")
            ax.set_ylabel("G")
            ax.set_zlabel("B")
            if model is not None:
                comps = pixel_components(model, y, x)
                for k in range(len(comps.weights)):
                    if comps.weights[k] <= 0:
                        continue
                    background = comps.background[k]
                    ax.plot_wireframe(
                        *_ellipsoid(comps.means[k], comps.stds[k]),
                        color="tab:green" if background else "tab:gray",
                        linewidth=0.8 if background else 0.4,
                        alpha=0.7,
                        label=f"{'background' if background else 'other'} "
                        f"w={comps.weights[k]:.2f}",
                    )
                ax.legend(fontsize=7, loc="upper left")
        else:
            ax = self.figure.add_subplot(211)
            points = ax.scatter(frames, samples[:, 0], c=colour, cmap="magma", s=8, vmin=vmin)
            ax.set_xlabel("frame")
            ax.set_ylabel("value")
            if model is not None:
                comps = pixel_components(model, y, x)
                for k in range(len(comps.weights)):
                    low = comps.means[k, 0] - 2 * comps.stds[k, 0]
                    high = comps.means[k, 0] + 2 * comps.stds[k, 0]
                    ax.axhspan(
                        low,
                        high,
                        alpha=0.2,
                        color="tab:green" if comps.background[k] else "tab:gray",
                    )
        self.figure.colorbar(points, ax=ax, label=colour_label, shrink=0.7)
        ax.set_title(
            f"{name}: pixel (y={y}, x={x})" + ("" if complete else " (reading…)"), fontsize=9
        )
        line = self.figure.add_subplot(212)
        if loglik is not None:
            line.plot(frames, loglik, color="tab:purple", linewidth=0.8, label="log-likelihood")
            line.axhline(
                threshold,
                color="black",
                linestyle="--",
                linewidth=0.8,
                label=f"threshold {threshold:g}",
            )
            bottom = max(float(np.min(loglik)), threshold - 40)
            line.set_ylim(bottom - 6, max(float(np.max(loglik)), threshold) + 2)
            line.scatter(
                frames[gmm],
                np.full(int(gmm.sum()), bottom - 2),
                marker="|",
                color="tab:orange",
                label="GMM foreground",
            )
            if mog2 is not None:
                line.scatter(
                    frames[: len(mog2)][mog2],
                    np.full(int(mog2.sum()), bottom - 4),
                    marker="|",
                    color="tab:blue",
                    label="MOG2 foreground",
                )
            line.legend(fontsize=7, loc="lower right")
        else:
            line.text(
                0.5,
                0.5,
                "fit a model to see log-likelihoods",
                ha="center",
                transform=line.transAxes,
            )
        line.set_xlabel("frame")
        line.set_xlim(0, max(len(samples) - 1, 1))
        self.canvas.draw_idle()
        self._export.enabled = True
        if complete:
            self.job.set_status(f"pixel ({y}, {x}): {len(samples)} frames")

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
        return write_or_notify(
            path,
            lambda: atomic_write(Path(path), lambda f: self.figure.savefig(f, format="png")),
        )
