import cv2
import dask.array as da
import numpy as np
import pytest

from napari_gmm_bg.io.cdnet import is_cdnet_folder, open_cdnet, read_cdnet


def test_read_cdnet_folder(cdnet_folder, rgb_sample):
    seq = read_cdnet(cdnet_folder)
    np.testing.assert_array_equal(seq.video, rgb_sample.video)
    assert seq.ground_truth.shape == rgb_sample.ground_truth.shape
    assert set(np.unique(seq.ground_truth)) == {0, 85, 170, 255}
    assert (seq.ground_truth[:5] == 85).all()
    assert seq.temporal_roi == range(5, 60)
    assert seq.roi.shape == (64, 96) and not seq.roi[:, :4].any() and seq.roi[:, 4:].all()
    assert is_cdnet_folder(cdnet_folder) and not is_cdnet_folder(cdnet_folder / "input")


def test_not_a_cdnet_folder(tmp_path):
    with pytest.raises(ValueError, match="not a CDnet folder"):
        read_cdnet(tmp_path)


def test_open_cdnet_lazily_equals_reading_it(cdnet_folder):
    lazy, eager = open_cdnet(cdnet_folder), read_cdnet(cdnet_folder)
    assert isinstance(lazy.video, da.Array) and isinstance(lazy.ground_truth, da.Array)
    np.testing.assert_array_equal(lazy.video.compute(), eager.video)
    np.testing.assert_array_equal(lazy.ground_truth.compute(), eager.ground_truth)
    np.testing.assert_array_equal(lazy.roi, eager.roi)
    assert lazy.temporal_roi == eager.temporal_roi and lazy.name == eager.name


def test_open_cdnet_refuses_ground_truth_of_another_size(cdnet_folder):
    cv2.imwrite(str(cdnet_folder / "groundtruth" / "gt000007.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="gt000007.png does not match"):
        open_cdnet(cdnet_folder)


def test_a_malformed_temporal_roi_is_a_clear_error(cdnet_folder):
    (cdnet_folder / "temporalROI.txt").write_text("470\n")
    with pytest.raises(ValueError, match="temporalROI.txt: expected two frame numbers"):
        open_cdnet(cdnet_folder)


@pytest.mark.parametrize("damage", ["wrong-size", "corrupt", "a-folder"])
def test_a_damaged_roi_bmp_is_an_error_naming_it(tmp_path, rgb_sample, damage):
    import shutil

    import cv2

    from napari_gmm_bg.io.cdnet import read_cdnet
    from tests.conftest import write_cdnet_folder

    folder = write_cdnet_folder(tmp_path / "seq", rgb_sample)
    roi = folder / "ROI.bmp"
    if damage == "wrong-size":
        cv2.imwrite(str(roi), np.full((10, 12), 255, np.uint8))
    elif damage == "corrupt":
        roi.write_bytes(b"BM" + bytes(40))
    else:
        roi.unlink()
        roi.mkdir()
    with pytest.raises(ValueError, match="ROI.bmp"):
        read_cdnet(folder)
    shutil.rmtree(folder)
