import dask.array as da
import numpy as np
import pytest

from napari_gmm_bg._napari.reader import read
from napari_gmm_bg.io.cdnet import read_cdnet
from napari_gmm_bg.io.video import read_video
from napari_gmm_bg.io.writers import save_tiff
from tests.io.bad_inputs import make_bad_inputs

PLUGIN = "napari-gmm-bg"


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize(
    "case",
    [
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
    ],
)
def test_bad_input_is_a_clear_error_and_no_layer(make_napari_viewer, bad, case):
    viewer = make_napari_viewer(show=False)
    path, message = bad[case]
    with pytest.raises(Exception) as error:  # noqa: PT011 - napari wraps our ValueError
        viewer.open(str(path), plugin=PLUGIN)
    assert message in str(error.value)
    assert len(viewer.layers) == 0


def test_unknown_extension_is_refused_by_name(make_napari_viewer, bad):
    viewer = make_napari_viewer(show=False)
    path, _ = bad["unknown-extension"]
    with pytest.raises(ValueError, match="napari-gmm-bg") as error:
        viewer.open(str(path), plugin=PLUGIN)
    assert path.name in str(error.value) and len(viewer.layers) == 0


def test_cdnet_folder_opens_lazily(make_napari_viewer, cdnet_folder):
    viewer = make_napari_viewer(show=False)
    viewer.open(str(cdnet_folder), plugin=PLUGIN)
    video, truth, roi = (
        viewer.layers[n] for n in ("highway", "highway ground truth", "highway ROI")
    )
    assert isinstance(video.data, da.Array) and isinstance(truth.data, da.Array)
    expected = read_cdnet(cdnet_folder)
    np.testing.assert_array_equal(np.asarray(video.data[7]), expected.video[7])
    np.testing.assert_array_equal(np.asarray(truth.data), expected.ground_truth)
    np.testing.assert_array_equal(roi.data, expected.roi)
    assert truth.metadata["temporal_roi"] == [5, 60]


def test_frame_folder_opens_lazily(make_napari_viewer, sample_folder):
    viewer = make_napari_viewer(show=False)
    viewer.open(str(sample_folder), plugin=PLUGIN)
    layer = viewer.layers["frames"]
    assert isinstance(layer.data, da.Array) and layer.rgb
    np.testing.assert_array_equal(np.asarray(layer.data), read_video(sample_folder))


def test_video_layer_keeps_every_frames_timestamp(make_napari_viewer, tmp_path):
    from tests.io.bad_inputs import clip
    from tests.io.test_lazy_video import encode

    gaps = np.random.default_rng(2).integers(15, 90, 40)
    pts = np.concatenate([[0], np.cumsum(gaps[:-1])])
    path = encode(tmp_path / "vfr.mp4", clip(), pts=pts)
    viewer = make_napari_viewer(show=False)
    viewer.open(str(path), plugin=PLUGIN)
    layer = viewer.layers["vfr"]
    np.testing.assert_allclose(layer.metadata["timestamps"], pts / 1000, atol=1e-3)
    viewer.dims.set_current_step(0, 17)  # the frame napari shows is the file's frame 17
    np.testing.assert_array_equal(np.asarray(layer._slice.image.raw), read_video(path)[17])


def test_a_float_clip_whose_first_frame_is_nan_opens(make_napari_viewer, tmp_path):
    frames = np.random.default_rng(2).normal(5, 1, (4, 10, 12)).astype(np.float32)
    frames[0] = np.nan
    save_tiff(tmp_path / "nan.tif", frames)
    layers = read(tmp_path / "nan.tif")
    assert layers[0][1]["contrast_limits"] == (frames[2].min(), frames[2].max())
    viewer = make_napari_viewer(show=False)
    layer = viewer.add_image(layers[0][0], **layers[0][1])
    assert layer.data.shape == frames.shape


def _damaged_mid_file(tmp_path, rgb_sample):
    """An H.264 MP4 whose middle is overwritten: the middle frame fails."""
    from tests.conftest import encode_mp4

    path = encode_mp4(tmp_path / "damaged.mp4", rgb_sample.video)
    data = bytearray(path.read_bytes())
    start = int(len(data) * 0.5)
    for i in range(start, start + 2000, 7):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


def test_a_video_damaged_mid_file_opens_no_layer(make_napari_viewer, tmp_path, rgb_sample):
    path = _damaged_mid_file(tmp_path, rgb_sample)
    with pytest.raises(ValueError, match="damaged.mp4"):
        read(path)
    viewer = make_napari_viewer(show=False)
    with pytest.raises(Exception, match="damaged.mp4"):  # noqa: PT011 - napari wraps it
        viewer.open(str(path), plugin=PLUGIN)
    assert len(viewer.layers) == 0
    viewer.layers.clear()  # and the viewer is still in order


def _concealed(tmp_path, frame, n):
    """An ``n``-frame H.264 clip (keyframes every 12) with noise in frame ``frame``'s data:
    FFmpeg conceals it by default (no exception, a repaired picture)."""
    from tests.io.bad_inputs import damage_frame, textured_clip
    from tests.io.test_lazy_video import encode

    clean = encode(tmp_path / "clean.mp4", textured_clip(n), options={"bf": "3", "g": "12"})
    return damage_frame(clean, frame, tmp_path / "concealed.mp4")


def test_a_video_with_concealed_damage_where_napari_opens_it_opens_no_layer(
    make_napari_viewer, tmp_path
):
    path = _concealed(tmp_path, 36, 96)  # frames 36-47: napari shows 47 first
    with pytest.raises(ValueError, match="concealed.mp4 is damaged"):
        read(path)
    viewer = make_napari_viewer(show=False)
    with pytest.raises(Exception, match="concealed.mp4 is damaged"):  # noqa: PT011 - napari wraps it
        viewer.open(str(path), plugin=PLUGIN)
    assert len(viewer.layers) == 0


def test_a_damaged_frame_met_later_is_a_notification_not_a_repaired_picture(
    make_napari_viewer, qtbot, tmp_path
):
    # Damage far from the frames read at open (0, 79, 80, 159, a few after each): the
    # layer opens.  Stepping onto it raises its error, which napari's hooks (installed
    # as in the app) turn into a notification; the frame is never shown repaired.
    from napari.utils.notifications import notification_manager
    from qtpy.QtCore import QTimer

    path = _concealed(tmp_path, 36, 160)
    viewer = make_napari_viewer(show=False)
    viewer.open(str(path), plugin=PLUGIN)
    (layer,) = viewer.layers
    with notification_manager:
        notification_manager.records.clear()
        QTimer.singleShot(0, lambda: viewer.dims.set_current_step(0, 40))

        def told() -> bool:
            return any(
                "concealed.mp4 is damaged" in str(n.message) for n in notification_manager.records
            )

        qtbot.waitUntil(told, timeout=60_000)
    with pytest.raises(ValueError, match="concealed.mp4 is damaged"):
        np.asarray(layer.data[40])
    np.asarray(layer.data[0])  # the rest of the clip still reads


def test_a_10_bit_video_layer_is_uint16_and_says_its_bit_depth(tmp_path):
    from tests.io.test_lazy_video import _encode_deep

    frames = (np.random.default_rng(0).integers(0, 1024, (6, 16, 24, 3)) * 64).astype(np.uint16)
    path = _encode_deep(tmp_path / "deep.mkv", frames, "ffv1", "yuv444p10le", "rgb48le")
    [(data, kwargs, kind)] = read(path)
    assert data.dtype == np.uint16 and kind == "image"
    assert kwargs["metadata"]["bit_depth"] == 10
