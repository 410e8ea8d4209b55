import os
import re

import numpy as np
import pytest

from napari_gmm_bg._napari.reader import read
from napari_gmm_bg.cli import main
from napari_gmm_bg.io.lazy_video import open_video
from napari_gmm_bg.io.video import open_frame_folder, read_video
from tests.io.bad_inputs import make_bad_inputs

CASES = [
    "truncated-mp4",
    "truncated-faststart-mp4",
    "truncated-mkv",
    "truncated-avi",
    "junk",
    "empty-file",
    "zero-frames",
    "no-video-stream",
    "unsupported-codec",
    "mixed-sizes",
    "unknown-extension",
]


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


def open_lazily(path):
    if path.is_dir():
        return open_frame_folder(path)
    if path.suffix == ".txt":
        return read(path)  # the napari reader's function, minus napari
    return open_video(path)


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_clear_value_error(bad, case):
    path, message = bad[case]
    before = sorted(os.listdir(path.parent))
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        open_lazily(path)
    text = str(error.value)
    assert "\n" not in text and (path.name in text or path.stem in text)
    assert sorted(os.listdir(path.parent)) == before  # no index kept for a bad file


def test_the_eager_reader_agrees(bad):
    for case in ("junk", "mixed-sizes", "unknown-extension", "zero-frames"):
        path, message = bad[case]
        with pytest.raises(ValueError, match=re.escape(message)):
            read_video(path)


@pytest.mark.parametrize("case", CASES)
def test_cli_prints_one_line_and_exits_2(bad, case, tmp_path, capfd):
    path, message = bad[case]
    out = tmp_path / "out"
    assert main(["fit", str(path), "--out", str(out)]) == 2
    err = capfd.readouterr().err.strip().splitlines()  # FFmpeg's own log included
    assert len(err) == 1 and err[0].startswith("napari-gmm-bg: error:") and message in err[0]
    assert not out.exists()


# --- damaged frames in a folder, damaged CDnet regions --------------------------------
@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_truncated_frame_in_a_folder_is_an_error_naming_it(tmp_path, suffix):
    import cv2

    from napari_gmm_bg.io.video import open_frame_folder, read_video

    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(folder / f"f{i}{suffix}"), rng.integers(0, 255, (24, 32, 3), np.uint8))
    damaged = folder / f"f3{suffix}"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size * 2 // 3])
    with pytest.raises(ValueError, match=f"f3{suffix}"):
        read_video(folder)
    video, _ = open_frame_folder(folder)
    with pytest.raises(ValueError, match=f"f3{suffix}"):
        video.compute()
