"""Small groups of controls that more than one widget uses."""

from magicgui.widgets import CheckBox, SpinBox


class FrameRange:
    """An optional frame range: a check box that reveals first and stop spin boxes.

    Parameters
    ----------
    text : str
        The check box's text.
    """

    def __init__(self, text: str) -> None:
        self.enabled = CheckBox(value=False, text=text)
        self.start = SpinBox(value=0, min=0, max=10**8, label="first frame", visible=False)
        self.stop = SpinBox(value=1, min=1, max=10**8, label="stop (exclusive)", visible=False)
        self.widgets = [self.enabled, self.start, self.stop]
        self._available = True
        self.enabled.changed.connect(self._show_bounds)

    def _show_bounds(self, *_: object) -> None:
        shown = self._available and bool(self.enabled.value)
        self.start.visible = shown
        self.stop.visible = shown

    def set_available(self, available: bool) -> None:
        """Show or hide the whole group (the bounds only while the box is checked)."""
        self._available = available
        self.enabled.visible = available
        self._show_bounds()

    @property
    def value(self) -> tuple[int, int] | None:
        """``(start, stop)`` when checked, else None."""
        if not self.enabled.value:
            return None
        return int(self.start.value), int(self.stop.value)
