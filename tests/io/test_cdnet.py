import numpy as np
import pytest

from napari_gmm_bg.io.cdnet import is_cdnet_folder, read_cdnet


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
