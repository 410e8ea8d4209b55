"""The "Compare masks" and "Mask statistics" dock widgets."""

from pathlib import Path
from typing import Any

import dask
import dask.array as da
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
from qtpy.QtCore import Qt

from ..core.inspect import precision_recall_curve
from ..core.metrics import (
    METRIC_NAMES,
    check_frame_range,
    difference_labels,
    frame_statistics,
    statistics_table,
)
from ..io.writers import write_csv
from ._controls import FrameRange
from ._jobs import BackgroundJob
from ._plots import embed_figure, export_path, style_figure, theme_colours, write_or_notify
from .layers import FIT_METHODS, Placement, plugin_meta, set_layer
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


#: Frames read per step: a block of frames is computed at once (in parallel, each
#: video chunk decoded once for both masks and the score), not frame by frame.
BLOCK_FRAMES = 32
#: Scores the precision-recall curve is computed from, at most (a regular sample).
CURVE_SAMPLES = 1_000_000


def _compute(*arrays: Any) -> list:
    """Compute several (numpy or dask) arrays in one pass: shared inputs are read once."""
    lazy = [i for i, a in enumerate(arrays) if isinstance(a, da.Array)]
    out = list(arrays)
    if lazy:
        for i, value in zip(lazy, dask.compute(*(arrays[i] for i in lazy)), strict=True):
            out[i] = value
    return [None if a is None else np.asarray(a) for a in out]


def _compare_job(a: Any, b: Any, truth: Any, roi: Any, frames: range, loglik: Any = None) -> Any:
    """Score both masks against the truth, a block of frames at a time; with A's
    distances, its precision-recall curve too (from the same reads)."""
    from ..core.metrics import Confusion, confusion, scored_pixels

    totals = {"a": Confusion(), "b": Confusion()}
    positives, negatives = [], []
    n = len(frames)
    yield 0, n
    for first in range(0, n, BLOCK_FRAMES):
        block = frames[first : first + BLOCK_FRAMES]
        cut = slice(block.start, block.stop, block.step)
        ma, mb, gt, ll = _compute(
            a[cut], b[cut], truth[cut], None if loglik is None else loglik[cut]
        )
        totals["a"] = totals["a"] + confusion(ma, gt, roi)
        totals["b"] = totals["b"] + confusion(mb, gt, roi)
        if ll is not None:
            pos, neg = scored_pixels(gt, roi)
            positives.append(ll[pos])
            negatives.append(ll[neg])
        yield min(first + BLOCK_FRAMES, n), n
    scores: dict[str, Any] = {key: {**c.metrics(), **c.as_dict()} for key, c in totals.items()}
    if loglik is not None:
        pos, neg = np.concatenate(positives), np.concatenate(negatives)
        # The curve is read off quantiles: a regular sample of a million scores draws
        # the same curve as 30 million (sorting them all took seconds).
        step = max(1, (pos.size + neg.size) // CURVE_SAMPLES)
        pos, neg = pos[::step], neg[::step]
        if pos.size and neg.size:
            # The collected scores as one "frame" of binary truth: the same curve.
            values = np.concatenate([pos, neg])[None]
            labels = np.concatenate([np.ones(pos.size, np.uint8), np.zeros(neg.size, np.uint8)])
            scores["curve"] = precision_recall_curve(values, labels[None])
    return scores


#: Fixed colours of the difference layer, with the legend the panel shows.
DIFFERENCE_COLOURS: dict[int | None, str] = {1: "#f2f2f2", 2: "#ff4a4a", 3: "#3aa0ff"}
DIFFERENCE_MEANING = {1: "both masks", 2: "only mask A", 3: "only mask B"}


def difference_colormap() -> Any:
    """A labels colormap: 1 both (white), 2 only A (red), 3 only B (blue), 0 clear."""
    from napari.utils.colormaps import DirectLabelColormap

    colours: dict[int | None, str] = {None: "transparent", 0: "transparent"}
    colours.update(DIFFERENCE_COLOURS)
    return DirectLabelColormap(color_dict=colours)


def legend_html(colours: dict, meanings: dict) -> str:
    """One line of coloured squares and their meanings, for a Label."""
    return " &nbsp; ".join(
        f'<span style="color:{colours[k]}">&#9632;</span> {meanings[k]}' for k in colours
    )


def fit_table_height(table: Any) -> None:
    """Size a Table to show all its rows: no scrolling inside a scrolling panel."""
    native = table.native
    native.resizeRowsToContents()
    height = native.horizontalHeader().height() + 2 * native.frameWidth() + 2
    height += sum(native.rowHeight(r) for r in range(native.rowCount()))
    native.setMinimumHeight(height)
    native.setMaximumHeight(height)


class CompareWidget(Container):
    """Compare two masks, and score them against ground truth when there is one.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers are read and written.
    """

    _mask_a: Any  # a layer choice (create_widget is typed as a bare Widget)

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self._mask_a: Any = create_widget(annotation=Labels, label="mask A")
        self._mask_a.tooltip = "The first mask (a Labels layer; label 1 is foreground)"
        self._mask_b = ComboBox(
            choices=self._b_choices,
            label="mask B",
            tooltip="The mask to compare with A (any Labels layer but A)",
        )
        self._truth = ComboBox(
            choices=self._labels_choices,
            nullable=True,
            value=None,
            label="ground truth",
            tooltip="Optional: the true foreground (CDnet labels or 0/1) to score both "
            "masks against; filled in when a CDnet folder is open",
        )
        self._region = ComboBox(
            choices=self._region_choices,
            nullable=True,
            value=None,
            label="scored region",
            tooltip="Optional Labels or Shapes layer: only pixels inside it are scored "
            "(CDnet's ROI when a CDnet folder is open)",
        )
        self._range = FrameRange("score a frame range only")
        self._range.enabled.tooltip = (
            "Score only some frames (CDnet scores the frames in temporalROI.txt)"
        )
        self._range.start.tooltip = "First frame scored"
        self._range.stop.tooltip = "Frames before this one are scored"
        self._compare_button = PushButton(
            text="Compare",
            tooltip="Show where the masks agree and differ; with ground truth, score both",
        )
        self._cancel_button = PushButton(text="Cancel", tooltip="Stop scoring")
        self._export_button = PushButton(
            text="Export table (CSV)…",
            enabled=False,
            tooltip="Save the metrics and the pixel counts as a CSV file",
        )
        self.table = Table(value={"data": [], "index": [], "columns": []})
        self.table.tooltip = (
            "Recall: share of true foreground found. Precision: share of what was found "
            "that is true foreground. F-measure: their harmonic mean. FPR/FNR: false "
            "positive/negative rates. PWC: percentage of wrong classifications"
        )
        self.table.visible = False
        self.legend = Label(value=legend_html(DIFFERENCE_COLOURS, DIFFERENCE_MEANING))
        self.legend.tooltip = "Colours of the difference layer"
        self.legend.native.setTextFormat(Qt.TextFormat.RichText)
        self.legend.visible = False
        self._status = Label(value="")
        self.job = BackgroundJob(
            self._compare_button, self._cancel_button, self._status, "Comparing masks"
        )
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
                self.job.bar,
                self._status,
                self.legend,
                self.table,
                self._export_button,
            ]
        )
        self.figure, self.canvas = embed_figure(self, (4, 3), 240)
        self.figure.set_layout_engine("tight")
        self.canvas.setVisible(False)
        self.scores: dict | None = None
        self.curve: dict | None = None
        self._prefilled: set = set()
        self._compare_button.changed.connect(self.compare)
        self._cancel_button.changed.connect(self.job.cancel)
        self._export_button.changed.connect(self.export_csv)
        self._mask_a.changed.connect(self._on_mask_a)
        self.native.destroyed.connect(lambda *_: self.job.shutdown())
        self._on_mask_a()

    def reset_choices(self, *args: Any) -> None:
        """Refresh the layer choices (napari calls this when layers change)."""
        super().reset_choices(*args)
        self._prefill()

    def _b_choices(self, _widget: Any = None) -> list[tuple[str, Layer]]:
        a = self._mask_a.value
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Labels) and layer is not a
        ]

    def _on_mask_a(self, *_: Any) -> None:
        self._mask_b.reset_choices()
        self._prefill()

    def _prefill(self) -> None:
        """Ground truth, region and frame range from an open CDnet folder, once each."""
        a = self._mask_a.value
        if a is None:
            return
        for layer in self._viewer.layers:
            meta = layer.metadata or {}
            if not isinstance(layer, Labels) or "temporal_roi" not in meta:
                continue
            if tuple(layer.data.shape) != tuple(a.data.shape) or id(layer) in self._prefilled:
                continue
            self._prefilled.add(id(layer))
            self._truth.reset_choices()
            self._region.reset_choices()
            self._truth.value = layer
            start, stop = (int(v) for v in meta["temporal_roi"])
            self._range.enabled.value = True
            self._range.start.value = start
            self._range.stop.value = min(stop, int(a.data.shape[0]))
            roi = layer.name.removesuffix(" ground truth") + " ROI"
            if roi in self._viewer.layers:
                self._region.value = self._viewer.layers[roi]
            self.job.set_status(f"ground truth, region and frames {start}-{stop} from CDnet")
            return

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
            if a is None or b is None or a is b:
                raise ValueError("choose two different mask layers to compare")
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
            total=len(frames),
            on_returned=lambda scores: self._show(scores, difference, names, placement),
            status="scoring…",
        )

    def _loglik_of(self, mask: Layer) -> Any:
        """The distance layer's data behind a GMM mask layer, if it is there."""
        meta = plugin_meta(mask)
        identity = meta.get("source_id")
        if identity is None or meta.get("method") not in FIT_METHODS:
            return None  # another method's mask (or not a result), not the GMM's
        for layer in self._viewer.layers:
            other = plugin_meta(layer)
            if other.get("source_id") == identity and other.get("kind") == "score":
                if other.get("method") in FIT_METHODS:
                    loglik = layer.data
                    return loglik if tuple(loglik.shape) == tuple(mask.data.shape) else None
        return None

    def _show_difference(self, difference: Any, names: tuple, placement: Placement) -> None:
        self.legend.value = legend_html(
            DIFFERENCE_COLOURS,
            {1: "both masks", 2: f"only A ({names[0]})", 3: f"only B ({names[1]})"},
        )
        self.legend.visible = True
        set_layer(
            self._viewer,
            difference,
            {
                "name": f"{names[0]} vs {names[1]} difference",
                "metadata": {"napari-gmm-bg": {"difference": list(names)}},
                "opacity": 0.7,
                "colormap": difference_colormap(),
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
        self.table.visible = True
        fit_table_height(self.table)
        self._export_button.enabled = True
        self._plot_curve(scores.get("curve"), [(names[0], scores["a"]), (names[1], scores["b"])])
        self.job.set_status("scored " + " and ".join(names))

    def _plot_curve(self, curve: dict | None, points: list[tuple[str, dict]]) -> None:
        self.curve = curve
        self.figure.clear()
        self.canvas.setVisible(curve is not None)
        if curve is None:
            return
        self._draw_curve(curve, points)
        style_figure(self.figure, theme_colours(self._viewer))
        self.canvas.draw_idle()

    def _draw_curve(self, curve: dict, points: list[tuple[str, dict]]) -> None:
        ax = self.figure.add_subplot(111)
        ax.plot(
            curve["recall"],
            curve["precision"],
            color="tab:orange",
            label=f"{points[0][0]} over thresholds (before clean-up)",
        )
        for (name, s), colour in zip(
            points, (DIFFERENCE_COLOURS[2], DIFFERENCE_COLOURS[3]), strict=True
        ):
            ax.scatter([s["recall"]], [s["precision"]], color=colour, zorder=3, label=name)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=7, loc="lower left")

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


def counted_labels(layer: Layer) -> tuple[Any, str]:
    """Which labels of a mask layer count as foreground, and how to say it.

    A mask of this plugin's: label 1 (shadows, 2, are not foreground).  CDnet ground
    truth: 255 (moving objects).  Any other labels layer: every non-zero label.

    Parameters
    ----------
    layer : napari.layers.Labels
        The mask.

    Returns
    -------
    tuple
        A function from a block of labels to a 0/1 uint8 block, and a description.
    """
    meta = layer.metadata or {}
    if "napari-gmm-bg" in meta and "difference" not in meta["napari-gmm-bg"]:
        return (lambda block: (block == 1).astype(np.uint8)), "label 1 (shadows not counted)"
    if "temporal_roi" in meta:
        return (lambda block: (block == 255).astype(np.uint8)), "label 255 (CDnet moving)"
    return (lambda block: (block != 0).astype(np.uint8)), "every non-zero label"


def _stats_job(mask: Any, counted: Any = None) -> Any:
    """Per-frame statistics, a block of frames at a time (computed at once), for progress
    and Cancel."""
    counted = counted or (lambda block: (np.asarray(block) == 1).astype(np.uint8))
    n = mask.shape[0]
    parts = []
    yield 0, n
    for start in range(0, n, BLOCK_FRAMES):
        (block,) = _compute(mask[start : start + BLOCK_FRAMES])
        parts.append(frame_statistics(counted(block)))
        yield min(start + BLOCK_FRAMES, n), n
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
        self._mask: Any = create_widget(annotation=Labels, label="mask")
        self._mask.tooltip = (
            "The mask to count: label 1 of this plugin's masks, 255 of CDnet ground "
            "truth, any non-zero label of other layers"
        )
        self._run_button = PushButton(
            text="Compute", tooltip="Count foreground pixels and blobs in every frame"
        )
        self._cancel_button = PushButton(text="Cancel", tooltip="Stop counting")
        self._export_button = PushButton(
            text="Export (CSV)…",
            enabled=False,
            tooltip="Save the per-frame area and blob counts as a CSV file",
        )
        self._status = Label(value="")
        self.job = BackgroundJob(
            self._run_button, self._cancel_button, self._status, "Mask statistics"
        )
        self.extend(
            [
                self._mask,
                Container(widgets=[self._run_button, self._cancel_button], layout="horizontal"),
                self.job.bar,
                self._status,
                self._export_button,
            ]
        )
        self.figure, self.canvas = embed_figure(self, (4, 3), 240)
        self.figure.set_layout_engine("tight")
        self.stats: dict | None = None
        self.counted = ""
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
        counted, self.counted = counted_labels(layer)
        return self.job.start(
            _stats_job,
            layer.data,
            counted,
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
        blobs.plot(stats["frame"], stats["blobs"], color="#3aa0ff", linewidth=0.8)
        blobs.set_ylabel("blobs", color="#3aa0ff")
        area.set_title(f"{name}: counting {self.counted}", fontsize=8)
        style_figure(self.figure, theme_colours(self._viewer))
        self.canvas.draw_idle()
        self._export_button.enabled = True
        self.job.set_status(f"{name}: {len(stats['frame'])} frames; counted {self.counted}")

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
