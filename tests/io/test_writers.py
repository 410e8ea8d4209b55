import dask.array as da
import numpy as np
import pytest

from napari_gmm_bg.io.stacks import open_tiff, open_zarr
from napari_gmm_bg.io.writers import save_tiff, save_zarr


@pytest.fixture
def stack():
    return np.random.default_rng(0).integers(0, 255, (20, 16, 24), dtype=np.uint8)


@pytest.mark.parametrize(
    ("save", "open_", "name"), [(save_tiff, open_tiff, "s.tif"), (save_zarr, open_zarr, "s.zarr")]
)
def test_round_trip_lazy_with_metadata(tmp_path, stack, save, open_, name):
    lazy = da.from_array(stack, chunks=(7, -1, -1))
    meta = {"threshold": -13.0, "model": object(), "times": np.arange(3.0)}
    path = save(tmp_path / name, lazy, meta)
    data, read_meta = open_(path)
    assert isinstance(data, da.Array)
    np.testing.assert_array_equal(data.compute(), stack)
    assert data.dtype == stack.dtype
    assert read_meta["threshold"] == -13.0 and read_meta["times"] == [0.0, 1.0, 2.0]
    assert "model" not in read_meta  # what JSON cannot hold is dropped
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary left


@pytest.mark.parametrize(("save", "name"), [(save_tiff, "s.tif"), (save_zarr, "s.zarr")])
def test_a_failed_write_keeps_the_existing_file(tmp_path, stack, save, name):
    path = save(tmp_path / name, stack, {"version": 1})

    def broken(block):
        raise OSError(28, "No space left on device")

    failing = da.from_array(stack, chunks=(5, -1, -1)).map_blocks(broken, dtype=stack.dtype)
    with pytest.raises(OSError, match="No space"):
        save(tmp_path / name, failing, {"version": 2})
    opener = open_tiff if name.endswith(".tif") else open_zarr
    data, meta = opener(path)
    np.testing.assert_array_equal(np.asarray(data), stack)
    assert meta["version"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
