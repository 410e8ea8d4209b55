"""The fit on a real dask.distributed cluster (processes) equals the local fit."""

import os
import re
import signal
import threading
import time

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster

from napari_gmm_bg import fit_background, make_sample
from napari_gmm_bg.core.gmm import CLUSTER_TILE_PIXELS


@pytest.fixture(scope="module")
def clip():
    # 240x320: five tiles of rows on the cluster.
    return make_sample("moving-shapes", n_frames=40, shape=(240, 320), seed=4).video


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def assert_same_model(a, b):
    for name in ("weights", "means", "variances"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_cluster_fit_equals_local_fit_and_masks_are_equal(client, clip):
    assert clip.shape[1] * clip.shape[2] > 4 * CLUSTER_TILE_PIXELS
    # Everything locally first: the kernels compile here, once, and both workers load
    # them from numba's cache instead of each compiling them again.
    local = fit_background(clip)
    expected = local.foreground(clip)
    remote = fit_background(clip, client=client)
    assert_same_model(remote, local)
    # Masks (clean-up needs whole frames: one frame per task) computed on the cluster.
    lazy = remote.foreground(da.from_array(clip, chunks=(5, -1, -1, -1)))
    with dask.config.set(scheduler=client.get):
        on_cluster = lazy.compute()
    np.testing.assert_array_equal(on_cluster, expected)
    assert len(client.run(os.getpid)) == 2


def test_scheduler_address_is_accepted(client, clip):
    model = fit_background(clip[:, :64], client=client.scheduler.address)
    assert_same_model(model, fit_background(clip[:, :64]))


def test_unreachable_scheduler_is_a_clear_error(clip):
    with pytest.raises(ValueError, match="cannot reach a dask scheduler"):
        fit_background(clip[:, :32, :32], client="tcp://127.0.0.1:1")


@pytest.mark.slow
def test_a_worker_killed_mid_fit_is_replaced_and_the_result_is_complete(clip):
    big = np.concatenate([clip] * 2, axis=1)  # 480x320: ten tiles
    slow = {"max_iter": 80, "tol": 0.0}  # long enough tasks to be killed in flight
    local = fit_background(big, **slow)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        result = {}

        def fit():
            result["model"] = fit_background(big, client=client, **slow)

        thread = threading.Thread(target=fit)
        thread.start()
        # Wait until the workers are busy with tiles, then kill one worker process.
        deadline = 60
        start = time.monotonic()
        while not any(client.processing().values()):
            assert time.monotonic() - start < deadline
            time.sleep(0.01)
        victim, pid = next(iter(client.run(os.getpid).items()))
        os.kill(pid, signal.SIGKILL)
        assert "model" not in result  # killed mid-fit, not after
        thread.join(timeout=120)
        assert not thread.is_alive()
        client.wait_for_workers(2, timeout=60)
        after = set(client.scheduler_info()["workers"])
        assert victim not in after  # a new worker process took its place
    assert_same_model(result["model"], local)


def test_cli_fits_scores_and_saves_on_the_cluster(client, tmp_path):
    import tifffile

    from napari_gmm_bg.cli import main

    address = client.scheduler.address
    assert (
        main(
            [
                "fit",
                "--sample",
                "moving-shapes",
                "--out",
                str(tmp_path / "c"),
                "--scheduler",
                address,
            ]
        )
        == 0
    )
    assert main(["fit", "--sample", "moving-shapes", "--out", str(tmp_path / "l")]) == 0
    for name in ("moving-shapes_gmm_mask.tif", "moving-shapes_gmm_distance.tif"):
        np.testing.assert_array_equal(
            tifffile.imread(tmp_path / "c" / name), tifffile.imread(tmp_path / "l" / name)
        )
    assert (
        main(
            [
                "fit",
                "--sample",
                "moving-shapes",
                "--out",
                str(tmp_path / "x"),
                "--scheduler",
                "tcp://127.0.0.1:1",
            ]
        )
        == 2
    )
    assert not (tmp_path / "x").exists()


def test_bad_pixels_found_on_the_workers_are_clear_errors(client, clip):
    bad = (clip[:, :64] / 255.0).astype(np.float32)
    bad[7, 3, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_background(da.from_array(bad, chunks=(4, 32, -1, -1)), client=client)
    rgba = np.concatenate(
        [clip[:, :64], np.full(clip[:, :64].shape[:3] + (1,), 255, np.uint8)], -1
    )
    rgba[5, 2, 2, 3] = 0
    with pytest.raises(ValueError, match="transparent"):
        fit_background(rgba, client=client)
    rgba[5, 2, 2, 3] = 255
    assert_same_model(fit_background(rgba, client=client), fit_background(clip[:, :64]))


def test_a_damaged_video_decoded_on_the_workers_raises_here(client, tmp_path):
    from napari_gmm_bg.io.lazy_video import open_video
    from tests.io.bad_inputs import encode_concealed_case

    _, damaged, frame = encode_concealed_case(tmp_path, "msmpeg4.avi")
    video, _ = open_video(damaged)  # the index is demuxed here: no frame decoded
    with pytest.raises(ValueError, match=f"video {damaged.name} is damaged") as error:
        fit_background(video, client=client, learning_frames=len(video))
    # The frame the decoder flagged is named (a frame predicted from it names it too).
    assert re.findall(r"frame (\d+)", str(error.value))[-1] == str(frame)
