import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tifffile

from napari_gmm_bg import fit_background, load_model
from napari_gmm_bg.cli import main
from napari_gmm_bg.io.video import read_video
from tests.conftest import iou

OUTPUTS = ("_gmm_loglik.tif", "_gmm_mask.tif", "_gmm_background.png", "_gmm_model.npz")


def test_fit_sample_writes_every_output(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["fit", "--sample", "moving-shapes", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"moving-shapes{s}" for s in OUTPUTS)  # no temporary files left
    mask = tifffile.imread(out / "moving-shapes_gmm_mask.tif")
    ll = tifffile.imread(out / "moving-shapes_gmm_loglik.tif")
    assert mask.shape == ll.shape == (80, 120, 160)
    assert mask.dtype == np.uint8 and ll.dtype == np.float32
    from napari_gmm_bg import make_sample

    assert iou(mask, make_sample("moving-shapes").ground_truth) >= 0.8
    with tifffile.TiffFile(out / "moving-shapes_gmm_mask.tif") as tif:
        meta = json.loads(tif.pages[0].description)
    assert meta["n_components"] == 3
    background = cv2.imread(str(out / "moving-shapes_gmm_background.png"))
    assert background.shape == (120, 160, 3)
    model = load_model(out / "moving-shapes_gmm_model.npz")
    # The PNG is RGB turned BGR on disk: it equals the model's background image.
    np.testing.assert_array_equal(background[..., ::-1], model.background_image())
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize("source", ["sample_mp4", "sample_avi", "sample_folder"])
def test_fit_real_files(tmp_path, request, source, rgb_sample):
    path = request.getfixturevalue(source)
    out = tmp_path / "result"
    assert main(["fit", str(path), "--out", str(out), "--learning-frames", "30"]) == 0
    stem = path.stem
    for suffix in OUTPUTS:
        assert (out / f"{stem}{suffix}").is_file()
    mask = tifffile.imread(out / f"{stem}_gmm_mask.tif")
    # The CLI runs the public API: same file, same settings, same mask.
    video = read_video(path)
    np.testing.assert_array_equal(
        mask, fit_background(video, learning_frames=30).foreground(video)
    )
    # Lossy codecs (4:2:0 chroma, MJPEG blocks) blur object borders: a looser bar than the
    # lossless clip's 0.8.
    assert iou(mask, rgb_sample.ground_truth) >= 0.6


def _run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "napari_gmm_bg.cli", *args], capture_output=True, text=True
    )


def _bad_cases(tmp_path, rgb_sample):
    np.save(tmp_path / "x.npy", np.zeros(3))
    flat = tmp_path / "flat"
    flat.mkdir()
    cv2.imwrite(str(flat / "only.png"), rgb_sample.video[0])
    a_file = tmp_path / "a_file"
    a_file.write_text("I am a file")
    return {
        "missing": ([str(tmp_path / "missing.mp4")], "no such file"),
        "unknown-type": ([str(tmp_path / "x.npy")], "unknown video type"),
        "single-frame": ([str(flat)], "at least 2 frames"),
        "out-is-file": (["--sample", "moving-shapes", "--out", str(a_file)], "not a folder"),
        "out-under-file": (
            ["--sample", "moving-shapes", "--out", str(a_file / "sub")],
            "not a folder",
        ),
        "too-many-components": (["--sample", "moving-shapes", "--components", "500"], "500"),
        "bad-range": (["--sample", "moving-shapes", "--frames", "70:90"], "not inside"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "unknown-type",
        "single-frame",
        "out-is-file",
        "out-under-file",
        "too-many-components",
        "bad-range",
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, rgb_sample, case):
    args, message = _bad_cases(tmp_path, rgb_sample)[case]
    out = tmp_path / "out"
    if "--out" not in args:
        args = [*args, "--out", str(out)]
    before = sorted(os.listdir(tmp_path))
    result = _run_cli("fit", *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert sorted(os.listdir(tmp_path)) == before
    assert not out.exists()


def test_failed_write_leaves_existing_files_untouched(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    keep = out / "moving-shapes_gmm_mask.tif"
    keep.write_bytes(b"previous result")

    import napari_gmm_bg.cli as cli

    def broken_png(path, image):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli, "write_png", broken_png)
    assert main(["fit", "--sample", "moving-shapes", "--out", str(out)]) == 2
    assert sorted(p.name for p in out.iterdir()) == [keep.name]
    assert keep.read_bytes() == b"previous result"


def test_argument_errors_exit_2():
    result = _run_cli("fit", "--out", "x")
    assert result.returncode == 2
    assert "error" in result.stderr
