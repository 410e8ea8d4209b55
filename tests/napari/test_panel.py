import numpy as np
from magicgui.widgets import Container, Label, Table
from matplotlib.colors import to_hex
from qtpy.QtWidgets import QApplication

from napari_gmm_bg._napari.panel import GmmPanel
from tests.napari.conftest import run_fit


def controls(widget):
    """Every magicgui control inside a tool, nested containers included."""
    for child in widget:
        if isinstance(child, Container):
            yield from controls(child)
        elif not isinstance(child, Label):
            yield child


def test_panel_opens_from_the_manifest_and_fits_a_small_screen(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    dock, panel = viewer.window.add_plugin_dock_widget(
        "napari-gmm-bg", "GMM background (all tools)"
    )
    assert isinstance(panel, GmmPanel)
    for _ in range(5):
        QApplication.processEvents()
    window = viewer.window._qt_window
    # The docked tools do not force the window taller than a 1280x800 screen.
    assert window.height() <= 800, window.height()
    assert panel.minimumSizeHint().height() < 600
    assert [panel.tabs.tabText(i) for i in range(panel.tabs.count())] == list(GmmPanel.TABS)
    for title in GmmPanel.TABS:
        tool = panel.show_tab(title)
        QApplication.processEvents()
        assert tool.native.isVisible()


def test_every_control_has_a_tooltip(make_napari_viewer):
    viewer = make_napari_viewer(show=False)
    panel = GmmPanel(viewer)
    missing = []
    for tool in (panel.fit, panel.methods, panel.compare, panel.stats, panel.inspector):
        for control in controls(tool):
            if isinstance(control, Table):
                continue
            if not (control.tooltip or "").strip():
                missing.append(f"{type(tool).__name__}.{control.label or control.name}")
    assert not missing, missing
    for i in range(panel.tabs.count()):
        assert panel.tabs.tabToolTip(i)


def test_inspector_listens_only_on_its_tab_and_plots_follow_the_theme(
    qtbot, make_napari_viewer, rgb_sample
):
    viewer = make_napari_viewer(show=False)
    layer = viewer.add_image(rgb_sample.video, name="clip", rgb=True)
    panel = GmmPanel(viewer)
    viewer.window.add_dock_widget(panel)
    assert not panel.inspector._active.value
    panel.show_tab("Inspect")
    assert panel.inspector._active.value
    panel.fit._video.value = layer
    run_fit(qtbot, panel.fit)
    # napari's dark theme, not white boxes.
    from napari.utils.theme import get_theme

    background = get_theme(viewer.theme).background.as_hex()
    assert to_hex(panel.fit.histogram_figure.get_facecolor()) == background
    panel.inspector._video.value = layer
    panel.inspector.inspect(3, 4)
    assert to_hex(panel.inspector.figure.get_facecolor()) == background
    ax = panel.inspector.figure.axes[-1]
    assert to_hex(ax.xaxis.label.get_color()) != "#000000"
    # A new layer reaches the tools' choices (napari refreshes the panel, not the tools).
    viewer.add_labels(np.zeros((60, 64, 96), np.uint8), name="painted")
    assert viewer.layers["painted"] in panel.stats._mask.choices
