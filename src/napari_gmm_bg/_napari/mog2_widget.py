"""The "MOG2 background (OpenCV)" dock widget: OpenCV's MOG2 beside the GMM."""

from dataclasses import fields
from typing import Any

import napari
from magicgui.widgets import (
    CheckBox,
    Container,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
    create_widget,
)
from napari.layers import Image, Layer
from napari.utils.notifications import show_error

from ..core.mog2 import Mog2Result, Mog2Settings, run_mog2_steps
from ._jobs import BackgroundJob
from .layers import Placement, set_layer, video_frames

_LABELS = {
    "history": "history",
    "var_threshold": "varThreshold",
    "detect_shadows": "detectShadows",
    "learning_rate": "learningRate",
    "n_mixtures": "NMixtures",
    "background_ratio": "BackgroundRatio",
    "var_threshold_gen": "VarThresholdGen",
    "var_init": "VarInit",
    "var_min": "VarMin",
    "var_max": "VarMax",
    "complexity_reduction_threshold": "ComplexityReductionThreshold",
    "shadow_threshold": "ShadowThreshold",
}


def mog2_layer_data(result: Mog2Result, source: str, placement: Placement) -> list[tuple]:
    """LayerDataTuples of a MOG2 run: the mask (1 foreground, 2 shadow) and background.

    Parameters
    ----------
    result : Mog2Result
        What :func:`napari_gmm_bg.core.mog2.run_mog2` returned.
    source : str
        Name of the video layer.
    placement : Placement
        The video layer's scale, translate and axis labels.

    Returns
    -------
    list of tuple
        ``(data, kwargs, layer_type)`` for the two layers.
    """
    meta = {"napari-gmm-bg": {"source": source, "mog2": result.settings.as_dict()}}
    return [
        (
            result.mask,
            {
                "name": f"{source} MOG2 mask",
                "opacity": 0.6,
                "metadata": meta,
                **placement.kwargs(),
            },
            "labels",
        ),
        (
            result.background,
            {
                "name": f"{source} MOG2 background",
                "rgb": result.background.ndim == 3,
                "visible": False,
                "metadata": meta,
                **placement.kwargs(last=2),
            },
            "image",
        ),
    ]


class Mog2Widget(Container):
    """Run OpenCV's MOG2 on a video layer, with every one of its settings.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers are read and written.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self._video = create_widget(annotation=Image, label="video")
        defaults = Mog2Settings()
        self._settings: dict[str, Any] = {}
        for field in fields(Mog2Settings):
            value = getattr(defaults, field.name)
            label = _LABELS[field.name]
            if isinstance(value, bool):
                widget = CheckBox(value=value, text=label)
            elif isinstance(value, int):
                widget = SpinBox(value=value, min=1, max=100_000, label=label)
            else:
                low = -1.0 if field.name == "learning_rate" else 0.0
                widget = FloatSpinBox(value=value, min=low, max=1e4, step=0.01, label=label)
            self._settings[field.name] = widget
        self._run_button = PushButton(text="Run MOG2")
        self._cancel_button = PushButton(text="Cancel")
        self._status = Label(value="")
        self.extend(
            [
                self._video,
                *self._settings.values(),
                Container(widgets=[self._run_button, self._cancel_button], layout="horizontal"),
                self._status,
            ]
        )
        self.job = BackgroundJob(
            self._run_button, self._cancel_button, self._status, "Running OpenCV MOG2"
        )
        self._run_button.changed.connect(self.run)
        self._cancel_button.changed.connect(self.job.cancel)
        self.native.destroyed.connect(lambda *_: self.job.shutdown())

    def settings(self) -> Mog2Settings:
        """Return the settings the widgets show."""
        return Mog2Settings(**{name: w.value for name, w in self._settings.items()})

    def run(self, layer: Any = None) -> Any:
        """Start MOG2 on the chosen (or given) video layer.

        Parameters
        ----------
        layer : napari.layers.Image, optional
            The video; the widget's choice when None.

        Returns
        -------
        superqt.utils.GeneratorWorker or None
            The worker, or None when the input was refused (a notification says why).
        """
        if not isinstance(layer, Layer):
            layer = self._video.value
        if self.job.running:
            return None
        try:
            steps = run_mog2_steps(video_frames(layer), self.settings())
            _, total = next(steps)  # the checks run here, before any thread
        except ValueError as exc:
            show_error(str(exc))
            return None

        def job() -> Any:
            return (yield from steps)

        placement = Placement.of(layer)
        return self.job.start(
            job,
            total=total,
            on_returned=lambda result: self._show(result, layer.name, placement),
            status=f"running MOG2 on {layer.name}…",
        )

    def _show(self, result: Mog2Result, source: str, placement: Placement) -> None:
        for data, kwargs, layer_type in mog2_layer_data(result, source, placement):
            set_layer(self._viewer, data, kwargs, layer_type)
        self.job.set_status(f"MOG2 done on {source}")
