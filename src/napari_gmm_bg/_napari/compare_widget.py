"""The "Compare masks" and "Mask statistics" dock widgets."""

from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    Label,
    PushButton,
    Table,
    create_widget,
)
from napari.layers import Labels, Layer, Shapes
from napari.utils.notifications import show_error

from ..core.inspect import precision_recall_curve
from ..core.metrics import (
    METRIC_NAMES,
    check_frame_range,
    difference_labels,
    evaluate_mask_steps,
    frame_statistics,
    statistics_table,
)
from ..io.writers import write_csv
from ._controls import FrameRange
from ._jobs import BackgroundJob
from ._plots import embed_figure, export_path, write_or_notify
from .layers import Placement, result_names, set_layer
from .widgets import region_mask

METRIC_TITLES = {
    "recall": "Recall",
    "specificity": "Specificity",
    "fpr": "FPR",
    "fnr": "FNR",
    "pwc": "PWC",
    "precision": "Precision",
    "f_measure": "F-measure",
}


def ask_csv_path(parent: Any, title: str) -> str:
    """Ask the user where to write a CSV file (a Qt dialog; tests replace this function)."""
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getSaveFileName(parent, title, "", "CSV (*.csv)")
    return path


def _compare_job(a: Any, b: Any, truth: Any, roi: Any, frames: range, loglik: Any = None) -> Any:
    """Score both masks against the truth; with A's log-likelihood, its PR curve too."""
    scores = {}
    for key, mask in (("a", a), ("b", b)):
        steps = evaluate_mask_steps(mask, truth, roi, frames)
        next(steps)
        scores[key] = yield from steps
    if loglik is not None:
        scores["curve"] = precision_recall_curve(loglik, truth, roi, frames)
    return scores


class CompareWidget(Container):
    """Compare two masks, and score them against ground truth when there is one.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers are read and written.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self._mask_a = create_widget(annotation=Labels, label="mask A")
        self._mask_b = create_widget(annotation=Labels, label="mask B")
        self._truth = ComboBox(
            choices=self._labels_choices, nullable=True, value=None, label="ground truth"
        )
        self._region = ComboBox(
            choices=self._region_choices, nullable=True, value=None, label="scored region"
        )
        self._range = FrameRange("score a frame range only")
        self._compare_button = PushButton(text="Compare")
        self._cancel_button = PushButton(text="Cancel")
        self._export_button = PushButton(text="Export table (CSV)…", enabled=False)
        self.table = Table(value={"data": [], "index": [], "columns": []})
        self._status = Label(value="")
        self.extend(
            [
                self._mask_a,
                self._mask_b,
                self._truth,
                self._region,
                *self._range.widgets,
                Container(
                    widgets=[self._compare_button, self._cancel_button], layout="horizontal"
                ),
                self.table,
                self._export_button,
                self._status,
            ]
        )
        self.figure, self.canvas = embed_figure(self, (4, 3), 240)
        self.figure.set_layout_engine("tight")
        self.canvas.setVisible(False)
        self.scores: dict | None = None
        self.curve: dict | None = None
        self.job = BackgroundJob(
            self._compare_button, self._cancel_button, self._status, "Comparing masks"
        )
        self._compare_button.changed.connect(self.compare)
        self._cancel_button.changed.connect(self.job.cancel)
        self._export_button.changed.connect(self.export_csv)
        self.native.destroyed.connect(lambda *_: self.job.shutdown())

    def _labels_choices(self, _widget: Any = None) -> list[tuple[str, Layer]]:
        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Labels)]

    def _region_choices(self, _widget: Any = None) -> list[tuple[str, Layer]]:
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Labels | Shapes)
        ]

    def compare(self, *_: Any) -> Any:
        """Add the difference layer and, with ground truth, fill the metrics table.

        Returns
        -------
        superqt.utils.GeneratorWorker or None
            The scoring worker (None without ground truth or when refused).
        """
        a, b, truth = self._mask_a.value, self._mask_b.value, self._truth.value
        try:
            if a is None or b is None:
                raise ValueError("choose two mask layers to compare")
            difference = difference_labels(a.data, b.data)
            n_frames = a.data.shape[0]
            frames = range(*(self._range.value or (0, n_frames)))
            check_frame_range(frames, n_frames)
            roi = region_mask(self._region.value, tuple(a.data.shape[1:]))
            if truth is not None and tuple(truth.data.shape) != tuple(a.data.shape):
                raise ValueError(
                    f"ground truth '{truth.name}' of shape {tuple(truth.data.shape)} does not "
                    f"match the masks {tuple(a.data.shape)}"
                )
        except ValueError as exc:
            show_error(str(exc))
            return None
        placement = Placement.of(a)
        names = (a.name, b.name)
        loglik = self._loglik_of(a)
        if truth is None:
            self._show_difference(difference, names, placement)
            self.job.set_status("difference shown; choose ground truth to score")
            return None
        return self.job.start(
            _compare_job,
            a.data,
            b.data,
            truth.data,
            roi,
            frames,
            loglik,
            total=2 * len(frames),
            on_returned=lambda scores: self._show(scores, difference, names, placement),
            status="scoring…",
        )

    def _loglik_of(self, mask: Layer) -> Any:
        """The log-likelihood layer's data behind a GMM mask layer, if it is there."""
        meta = mask.metadata.get("napari-gmm-bg", {})
        source = meta.get("source")
        if source is None or "method" in meta:  # another method's mask, not the GMM's
            return None
        name = result_names(source)["loglik"]
        if name not in self._viewer.layers:
            return None
        loglik = self._viewer.layers[name].data
        return loglik if tuple(loglik.shape) == tuple(mask.data.shape) else None

    def _show_difference(self, difference: Any, names: tuple, placement: Placement) -> None:
        set_layer(
            self._viewer,
            difference,
            {
                "name": f"{names[0]} vs {names[1]} difference",
                "metadata": {"napari-gmm-bg": {"difference": list(names)}},
                "opacity": 0.7,
                **placement.kwargs(),
            },
            "labels",
        )

    def _show(self, scores: dict, difference: Any, names: tuple, placement: Placement) -> None:
        self._show_difference(difference, names, placement)
        self.scores = {names[0]: scores["a"], names[1]: scores["b"]}
        columns = list(self.scores)
        if columns[0] == columns[1]:
            columns = [f"A: {names[0]}", f"B: {names[1]}"]
        self.table.value = {
            "data": [[round(s[m], 6) for s in self.scores.values()] for m in METRIC_NAMES],
            "index": [METRIC_TITLES[m] for m in METRIC_NAMES],
            "columns": columns,
        }
        self._export_button.enabled = True
        self._plot_curve(scores.get("curve"), [(names[0], scores["a"]), (names[1], scores["b"])])
        self.job.set_status("scored " + " and ".join(names))

    def _plot_curve(self, curve: dict | None, points: list[tuple[str, dict]]) -> None:
        self.curve = curve
        self.figure.clear()
        self.canvas.setVisible(curve is not None)
        if curve is None:
            return
        ax = self.figure.add_subplot(111)
        ax.plot(
            curve["recall"],
            curve["precision"],
            color="tab:orange",
            label=f"{points[0][0]} over thresholds (before clean-up)",
        )
        for (name, s), colour in zip(points, ("tab:red", "tab:blue"), strict=True):
            ax.scatter([s["recall"]], [s["precision"]], color=colour, zorder=3, label=name)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7, loc="lower left")
        self.canvas.draw_idle()

    def export_csv(self, path: str | None = None) -> Path | None:
        """Write the metrics table to CSV (asks for a file when no path is given).

        Parameters
        ----------
        path : str, optional
            Destination.

        Returns
        -------
        pathlib.Path or None
            The file written.
        """
        if self.scores is None:
            return None
        path = export_path(path, lambda: ask_csv_path(self.native, "Export metrics"))
        names = list(self.scores)
        keys = (*METRIC_NAMES, "tp", "fp", "tn", "fn")
        rows = [[key, *(self.scores[name][key] for name in names)] for key in keys]
        return write_or_notify(path, lambda: write_csv(path, ["metric", *names], rows))


def _stats_job(mask: Any) -> Any:
    """Per-frame statistics in chunks, for progress and Cancel."""
    n = mask.shape[0]
    parts = []
    yield 0, n
    for start in range(0, n, 32):
        parts.append(frame_statistics(mask[start : start + 32]))
        yield min(start + 32, n), n
    stats = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    stats["frame"] = np.arange(n)
    return stats


class StatsWidget(Container):
    """Per-frame foreground area and number of blobs of a mask layer, plotted.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers are read.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self._mask = create_widget(annotation=Labels, label="mask")
        self._run_button = PushButton(text="Compute")
        self._cancel_button = PushButton(text="Cancel")
        self._export_button = PushButton(text="Export (CSV)…", enabled=False)
        self._status = Label(value="")
        self.extend(
            [
                self._mask,
                Container(widgets=[self._run_button, self._cancel_button], layout="horizontal"),
                self._export_button,
                self._status,
            ]
        )
        self.figure, self.canvas = embed_figure(self, (4, 3), 240)
        self.figure.set_layout_engine("tight")
        self.stats: dict | None = None
        self.job = BackgroundJob(
            self._run_button, self._cancel_button, self._status, "Mask statistics"
        )
        self._run_button.changed.connect(self.compute)
        self._cancel_button.changed.connect(self.job.cancel)
        self._export_button.changed.connect(self.export_csv)
        self.native.destroyed.connect(lambda *_: self.job.shutdown())

    def compute(self, *_: Any) -> Any:
        """Start computing the statistics of the chosen mask layer.

        Returns
        -------
        superqt.utils.GeneratorWorker or None
            The worker, or None without a mask layer.
        """
        layer = self._mask.value
        if layer is None or layer.data.ndim != 3:
            show_error("choose a mask: a Labels layer with a time axis")
            return None
        return self.job.start(
            _stats_job,
            layer.data,
            total=layer.data.shape[0],
            on_returned=lambda stats: self._show(stats, layer.name),
            status=f"counting {layer.name}…",
        )

    def _show(self, stats: dict, name: str) -> None:
        self.stats = stats
        self.figure.clear()
        area = self.figure.add_subplot(111)
        area.plot(stats["frame"], 100 * stats["foreground_fraction"], color="tab:orange")
        area.set_xlabel("frame")
        area.set_ylabel("foreground (% of frame)", color="tab:orange")
        blobs = area.twinx()
        blobs.plot(stats["frame"], stats["blobs"], color="tab:blue", linewidth=0.8)
        blobs.set_ylabel("blobs", color="tab:blue")
        area.set_title(name, fontsize=9)
        self.canvas.draw_idle()
        self._export_button.enabled = True
        self.job.set_status(f"{name}: {len(stats['frame'])} frames")

    def export_csv(self, path: str | None = None) -> Path | None:
        """Write the per-frame statistics to CSV (asks for a file when not given).

        Parameters
        ----------
        path : str, optional
            Destination.

        Returns
        -------
        pathlib.Path or None
            The file written.
        """
        if self.stats is None:
            return None
        path = export_path(path, lambda: ask_csv_path(self.native, "Export statistics"))
        header, rows = statistics_table(self.stats)
        return write_or_notify(path, lambda: write_csv(path, header, rows))
