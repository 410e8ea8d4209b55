"""Small groups of controls that more than one widget uses."""

from typing import Any

from magicgui.widgets import CheckBox, SpinBox


def show_special_value(spin: SpinBox, text: str) -> None:
    """Show ``text`` in place of a spin box's minimum ("auto", "never").

    Qt's ``QSpinBox.setSpecialValueText`` does this, but magicgui's integer spin box is
    superqt's ``QLargeIntSpinBox``, which ignores it and showed the bare number (-1 for
    an automatic median filter).  Typing the text, or clearing the box, sets the minimum;
    typing something else that is not a number keeps the value.

    Parameters
    ----------
    spin : magicgui.widgets.SpinBox
        The spin box.
    text : str
        What its minimum means, in a word.
    """
    native: Any = spin.native
    minimum = spin.min

    def update_edit() -> None:
        shown = text if native._value == minimum else str(native._value)
        if native.lineEdit().text() != shown:
            native.lineEdit().setText(shown)

    def interpret(policy: Any) -> None:
        typed = native.lineEdit().displayText().strip()
        try:
            value = minimum if typed in ("", text) else int(typed)
        except ValueError:
            value = native._value  # not a number: keep the value, show it again
        native._setValue(value, policy)
        update_edit()

    native._updateEdit = update_edit
    native._interpret = interpret
    update_edit()


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
