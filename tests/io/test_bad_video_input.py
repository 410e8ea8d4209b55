import os
import re

import numpy as np
import pytest

from napari_gmm_bg._napari.reader import read
from napari_gmm_bg.cli import main
from napari_gmm_bg.io.lazy_video import open_video
from napari_gmm_bg.io.video import open_frame_folder, read_video
from tests.io.bad_inputs import (
    CONCEALED_CODECS,
    encode_concealed_case,
    make_bad_inputs,
    plain_decode,
)

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


# --- damage the decoder conceals: no exception from FFmpeg by default ------------------
@pytest.fixture(scope="module", params=sorted(CONCEALED_CODECS))
def concealed(request, tmp_path_factory):
    clean, damaged, frame = encode_concealed_case(
        tmp_path_factory.mktemp("concealed"), request.param
    )
    # The premise: decoded as FFmpeg does by default, every frame comes out, no error,
    # and the damaged frame differs from the clean file's.
    silent, reference = plain_decode(damaged), plain_decode(clean)
    assert silent.shape == reference.shape
    assert np.array_equal(silent[:frame], reference[:frame])
    assert not np.array_equal(silent[frame], reference[frame])
    return clean, damaged, frame


def test_concealed_damage_is_an_error_naming_the_file_and_frame(concealed):
    clean, damaged, frame = concealed
    video, _ = open_video(damaged)
    with pytest.raises(ValueError, match=rf"video {re.escape(damaged.name)} is damaged") as lazy:
        video.compute()
    with pytest.raises(ValueError, match=rf"video {re.escape(damaged.name)} is damaged") as eager:
        read_video(damaged)
    for error in (lazy, eager):
        text = str(error.value)
        assert "\n" not in text
        # The frame named: exact where the decoder flags it; where it fails instead,
        # the frames out before the failure, which frame threads (up to 16, one per
        # core) and B-frames can put some frames before the damaged one.
        named = int(re.findall(r"frame (\d+)", text)[-1])  # (predicted from) that frame
        assert frame - 20 <= named <= frame, text
    # The same clip undamaged reads, eagerly and lazily alike: no false alarm.
    np.testing.assert_array_equal(open_video(clean)[0].compute(), read_video(clean))


def test_a_damaged_frame_read_lazily_raises_every_time_and_is_never_cached(tmp_path):
    # The frames predicted from the damaged one (up to the next keyframe) are refused
    # too (msmpeg4 conceals this damage and flags the frame), and every time they are
    # asked for; the other groups of pictures read as from the clean file.
    clean, damaged, frame = encode_concealed_case(tmp_path, "msmpeg4.avi")
    video, index = open_video(damaged, chunk=1)
    reference = read_video(clean)
    after = int(index.keyframes[np.searchsorted(index.keyframes, frame, "right")])
    for _ in range(2):
        for t in (frame, frame + 2, after - 1):
            with pytest.raises(ValueError, match=f"video {damaged.name} is damaged"):
                video[t].compute()
        np.testing.assert_array_equal(video[frame - 1].compute(), reference[frame - 1])
        np.testing.assert_array_equal(video[after].compute(), reference[after])
    with pytest.raises(
        ValueError, match=rf"frame {frame + 2} is predicted from damaged frame {frame}"
    ):
        video[frame + 2].compute()


def test_the_cli_refuses_concealed_damage_and_writes_nothing(concealed, tmp_path, capfd):
    _, damaged, _ = concealed
    before = sorted(os.listdir(damaged.parent))
    for mode in ("offline", "online"):
        out = tmp_path / mode
        assert main(["fit", str(damaged), "--out", str(out), "--mode", mode]) == 2
        err = capfd.readouterr().err.strip().splitlines()
        err = [line for line in err if "preparing the fast kernels" not in line]  # 1st run
        assert len(err) == 1 and f"video {damaged.name} is damaged" in err[0], err
        assert not out.exists()
    assert sorted(os.listdir(damaged.parent)) == before  # no hidden index left either


def _noise_mid_file(path, size=64):
    data = bytearray(path.read_bytes())
    at = len(data) // 2
    data[at : at + size] = np.random.default_rng(0).integers(0, 256, size, np.uint8).tobytes()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_frame_damaged_mid_file_in_a_folder_is_an_error_naming_it(tmp_path, suffix):
    # Noise inside the data, the end marker intact: libjpeg decodes such a JPEG with a
    # warning on stderr only, the rest of the picture garbled (PNG's checksums fail).
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        frame = rng.integers(0, 8, (48, 64, 3), np.uint8) * 32
        cv2.imwrite(str(folder / f"f{i}{suffix}"), frame)
    _noise_mid_file(folder / f"f3{suffix}")
    with pytest.raises(ValueError, match=f"f3{suffix}"):
        read_video(folder)
    video, _ = open_frame_folder(folder)
    with pytest.raises(ValueError, match=f"f3{suffix}"):
        video.compute()


def test_a_jpeg_damaged_mid_file_in_a_cdnet_folder_is_an_error_naming_it(
    tmp_path, rgb_sample, capfd
):
    import cv2

    from napari_gmm_bg.io.cdnet import read_cdnet
    from tests.conftest import write_cdnet_folder

    folder = write_cdnet_folder(tmp_path / "scene", rgb_sample)
    for png in sorted((folder / "input").glob("*.png")):  # CDnet's frames are JPEGs
        cv2.imwrite(str(png.with_suffix(".jpg")), cv2.imread(str(png)))
        png.unlink()
    damaged = folder / "input" / "in000012.jpg"
    _noise_mid_file(damaged)
    with pytest.raises(ValueError, match=damaged.name):
        read_cdnet(folder)
    assert main(["evaluate", str(folder), "--methods", "baseline"]) == 2
    err = capfd.readouterr().err.strip().splitlines()  # no libjpeg warning either
    assert len(err) == 1 and damaged.name in err[0], err
