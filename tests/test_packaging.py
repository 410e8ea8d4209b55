"""The sdist and wheel carry what PyPI and the napari hub need (``.ci/run`` adds twine)."""

import re
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REPO = "https://github.com/napari-gmm-bg/napari-gmm-bg"
CI_PYTHONS = ["3.11"]  # what .ci/run tests: add a version here and to CI together


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    pytest.importorskip("build")
    pytest.importorskip("hatchling")  # the build backend: no download with --no-isolation
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    return out


def _metadata(dist: Path):
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (name,) = (n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(archive.read(name).decode()), archive.namelist()


def test_metadata_is_what_an_upload_accepts(dist):
    meta, names = _metadata(dist)
    assert meta["License-Expression"] == "BSD-3-Clause"
    classifiers = meta.get_all("Classifier")
    assert not [c for c in classifiers if c.startswith("License ::")]
    # Python versions: only the ones CI (.ci/run) tests.
    versions = [c.rsplit(" :: ", 1)[1] for c in classifiers if re.match(r".*:: 3\.\d+$", c)]
    assert versions == CI_PYTHONS
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert urls["Documentation"].startswith(REPO)
    assert "napari_gmm_bg/napari.yaml" in names  # the npe2 manifest ships in the wheel


def test_readme_links_are_absolute(dist):
    meta, _ = _metadata(dist)
    links = re.findall(r"\]\(([^)\s]+)\)", meta.get_payload())
    assert links
    relative = [link for link in links if not re.match(r"https?://|#", link)]
    assert relative == [], "relative links break on PyPI and the napari hub"


def test_sdist_carries_the_docs_and_the_manifest(dist):
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    for name in ("docs/fit-1280x800.png", "napari.yaml", "LICENSE", "README.md", "pyproject.toml"):
        assert name in names
