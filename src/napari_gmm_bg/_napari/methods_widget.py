"""The "Compare with other methods" dock widget: MOG2, KNN, the median baseline, ...

One widget for every method the registry offers for comparison (this package's and
those other packages register): choose a method, its settings form is generated from
its settings dataclass (labels, ranges and tooltips come from the fields' metadata),
and Run adds "<video> <method> mask" (and its background, and its score where it has
one) beside the GMM's layers.
"""

from dataclasses import Field
from typing import Any

import napari
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
    Widget,
    create_widget,
)
from napari.layers import Image, Layer
from napari.utils.notifications import show_error

from ..core.interface import Method, MethodResult, default_of, settings_fields
from ..core.registry import comparison_methods
from ._jobs import BackgroundJob
from .layers import Placement, method_layer_data, set_layer, source_id, video_frames

#: Decimals of every float setting: enough that no value a person types is rounded
#: away (a learning rate of 0.002 must reach OpenCV as 0.002, not 0.0).
FLOAT_DECIMALS = 6


def setting_widget(f: Field) -> Widget:
    """Build the control of one settings field from its metadata.

    Parameters
    ----------
    f : dataclasses.Field
        A field made by :func:`napari_gmm_bg.core.interface.setting`.

    Returns
    -------
    magicgui.widgets.Widget
        A check box, spin box, float spin box or combo box, with its tooltip.
    """
    meta, value = f.metadata, default_of(f)
    label, tooltip = meta["label"], meta["help"]
    if meta.get("choices"):
        return ComboBox(value=value, choices=meta["choices"], label=label, tooltip=tooltip)
    if isinstance(value, bool):
        return CheckBox(value=value, text=label, tooltip=tooltip)
    low = meta.get("minimum")
    high = meta.get("maximum")
    if isinstance(value, int):
        return SpinBox(
            value=value,
            min=int(0 if low is None else low),
            max=int(1_000_000 if high is None else high),
            label=label,
            tooltip=tooltip,
        )
    widget = FloatSpinBox(
        value=value,
        min=float(-1e9 if low is None else low),
        max=float(1e9 if high is None else high),
        step=float(meta.get("step") or 0.1),
        label=label,
        tooltip=tooltip,
    )
    widget.native.setDecimals(FLOAT_DECIMALS)
    widget.value = value  # again, now that no decimal is cut
    return widget


class MethodsWidget(Container):
    """Run another background-subtraction method on a video layer, to compare.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers are read and written.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self._viewer = viewer
        self._methods = {m.name: m for m in comparison_methods()}
        self._video: Any = create_widget(annotation=Image, label="video")
        self._video.tooltip = "the video layer (an Image with a time axis) to run the method on"
        self._method = ComboBox(
            choices=[(m.title, m.name) for m in self._methods.values()],
            label="method",
            tooltip="the method to compare with the GMM; its settings follow",
        )
        self._form: Container[Widget] = Container(labels=True)
        self._settings: dict[str, Any] = {}  # value widgets, by field name
        self._run_button = PushButton(text="Run", tooltip="run the method on the whole clip")
        self._cancel_button = PushButton(text="Cancel", tooltip="stop; no layer changes")
        self._status = Label(value="")
        self.job = BackgroundJob(
            self._run_button, self._cancel_button, self._status, "Running a method"
        )
        self.extend(
            [
                self._video,
                self._method,
                self._form,
                Container(widgets=[self._run_button, self._cancel_button], layout="horizontal"),
                self.job.bar,
                self._status,
            ]
        )
        self._method.changed.connect(self._build_form)
        self._run_button.changed.connect(self.run)
        self._cancel_button.changed.connect(self.job.cancel)
        self.native.destroyed.connect(lambda *_: self.job.shutdown())
        self._build_form()

    @property
    def method(self) -> Method:
        """The method chosen."""
        return self._methods[self._method.value]

    def choose(self, name: str) -> None:
        """Choose a method by its registered name (``mog2``, ``knn``, ``baseline``, ...).

        Parameters
        ----------
        name : str
            The method's name.
        """
        if name not in self._methods:
            raise ValueError(
                f"no comparison method {name!r}; choose from {', '.join(self._methods)}"
            )
        self._method.value = name

    def _build_form(self, *_: Any) -> None:
        self._form.clear()
        self._settings = {
            f.name: setting_widget(f) for f in settings_fields(self.method.settings_type)
        }
        self._form.extend(list(self._settings.values()))

    def settings(self) -> Any:
        """Return the chosen method's settings as the controls show them.

        Returns
        -------
        object
            An instance of the method's settings dataclass.
        """
        return self.method.settings_type(**{n: w.value for n, w in self._settings.items()})

    def run(self, layer: Any = None) -> Any:
        """Start the chosen method on the chosen (or given) video layer.

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
        method = self.method
        try:
            settings = self.settings()
            settings.validate()
            steps = method.run_steps(video_frames(layer), settings)
            _, total = next(steps)  # the checks run here, before any thread
        except ValueError as exc:
            show_error(str(exc))
            return None

        def job() -> Any:
            result = yield from steps
            result.labels(), result.score()  # computed here, off the GUI thread
            return result

        placement = Placement.of(layer)
        return self.job.start(
            job,
            total=total,
            on_returned=lambda result: self._show(method, result, layer, placement),
            status=f"running {method.title} on {layer.name}…",
        )

    def _show(self, method: Method, result: MethodResult, layer: Layer, placement: Any) -> None:
        if layer not in self._viewer.layers:
            self.job.set_status(f"'{layer.name}' was removed; nothing added")
            return
        tuples = method_layer_data(method, result, layer.name, placement, source_id(layer))
        for data, kwargs, layer_type in tuples:
            set_layer(self._viewer, data, kwargs, layer_type)
        self.job.set_status(f"{method.title} done on {layer.name}")
