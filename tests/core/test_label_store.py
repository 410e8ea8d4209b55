import gc

import dask.array as da
import numpy as np

from napari_gmm_bg.core import label_store
from napari_gmm_bg.core.label_store import LabelWriter
from napari_gmm_bg.core.mog2 import Mog2Settings, run_mog2
from napari_gmm_bg.core.registry import get_method


def test_small_labels_stay_in_memory_large_ones_go_to_disk_and_read_back_equal():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (40, 12, 20), dtype=np.uint8)
    small = LabelWriter(labels.shape, chunk=16)
    big = LabelWriter(labels.shape, chunk=16, in_memory_bytes=1000)
    assert not small.on_disk and big.on_disk
    for start in range(0, 40, 16):
        small.write(start, labels[start : start + 16])
        big.write(start, labels[start : start + 16])
    assert isinstance(small.result(), np.ndarray)
    result = big.result()
    assert isinstance(result, da.Array) and result.dtype == np.uint8
    np.testing.assert_array_equal(result.compute(), labels)
    np.testing.assert_array_equal(np.asarray(result[17]), labels[17])
    folder = big.folder
    assert folder is not None and folder.exists()
    del big, result
    gc.collect()
    assert not folder.exists()  # removed with the last array that reads it


def test_a_long_clips_method_labels_are_on_disk_and_equal_run_mog2(rgb_sample, monkeypatch):
    """Through the method interface (the widgets, evaluate) a long clip's labels are read
    from disk; ``run_mog2`` still returns the whole mask in memory."""
    video = rgb_sample.video
    monkeypatch.setattr(label_store, "IN_MEMORY_BYTES", 10_000)
    settings = Mog2Settings(history=50)
    result = get_method("mog2").run(video, settings)
    labels = result.labels()
    assert isinstance(labels, da.Array)
    expected = run_mog2(video, settings).mask
    assert isinstance(expected, np.ndarray)
    np.testing.assert_array_equal(np.asarray(labels), expected)
    knn = get_method("knn").run(video).labels()
    assert isinstance(knn, da.Array) and knn.shape == video.shape[:3]
