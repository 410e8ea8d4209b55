from pathlib import Path

import npe2

import napari_gmm_bg


def test_manifest_validates_with_imports():
    manifest = npe2.PluginManifest.from_distribution("napari-gmm-bg")
    manifest.validate_imports()
    assert manifest.name == "napari-gmm-bg"
    ids = {c.id for c in manifest.contributions.commands}
    assert {"napari-gmm-bg.fit_widget", "napari-gmm-bg.sample_moving_shapes"} <= ids
    assert all(i.startswith("napari-gmm-bg.") for i in ids)


def test_manifest_in_package_is_the_root_manifest():
    packaged = Path(napari_gmm_bg.__file__).parent / "napari.yaml"
    root = Path(__file__).parents[1] / "napari.yaml"
    assert packaged.read_text() == root.read_text()
