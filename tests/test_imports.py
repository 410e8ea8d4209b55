import re
import subprocess
import sys
from pathlib import Path

import napari_gmm_bg

CORE_AND_IO = [
    "napari_gmm_bg",
    "napari_gmm_bg.core",
    "napari_gmm_bg.io.video",
    "napari_gmm_bg.io.writers",
    "napari_gmm_bg.cli",
]


def test_core_imports_neither_napari_nor_qt():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE_AND_IO)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui', 'vispy'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_core_sources_do_not_import_napari_or_qt():
    # Also catches imports inside functions, which the subprocess test cannot see.
    pattern = re.compile(r"^\s*(from|import)\s+(napari|qtpy|PyQt\d|PySide\d|magicgui)\b", re.M)
    root = Path(napari_gmm_bg.__file__).parent
    for folder in ("core", "io"):
        for path in (root / folder).glob("*.py"):
            assert not pattern.search(path.read_text()), path.name


def test_import_works_without_fork():
    # Windows has no os.register_at_fork (nor os.fork): importing and fitting must not
    # need it.  Both go, as on Windows: the standard library's own modules (random,
    # imported by tempfile) register fork handlers only where os.fork exists, so in a
    # fresh virtual environment, where nothing has imported them yet, deleting only the
    # first breaks the standard library, not this package.
    code = (
        "import os\n"
        "del os.register_at_fork\n"
        "del os.fork\n"
        "import napari_gmm_bg\n"
        "sample = napari_gmm_bg.make_sample(n_frames=10, shape=(32, 48))\n"
        "model = napari_gmm_bg.fit_background(sample.video, learning_frames=5)\n"
        "print(model.foreground(sample.video).shape)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(10, 32, 48)"
