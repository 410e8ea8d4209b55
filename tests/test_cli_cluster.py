"""The CLI on a cluster deployed as users deploy it: ``dask scheduler`` and ``dask worker``
started as processes, the CLI run as a subprocess with ``--scheduler``."""

import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_gmm_bg
from napari_gmm_bg import load_model
from napari_gmm_bg.cli import main
from napari_gmm_bg.core.cluster import check_scheduler

SRC = str(Path(napari_gmm_bg.__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
DASK = shutil.which("dask")

pytestmark = pytest.mark.skipif(DASK is None, reason="the dask command is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args, timeout=120):
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "napari_gmm_bg.cli", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result, time.monotonic() - start


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """A scheduler and two single-threaded workers, each a process of its own."""
    log = tmp_path_factory.mktemp("cluster")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes = [
        subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=open(log / "scheduler.log", "w"),  # noqa: SIM115 - closed with the process
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                check_scheduler(address, timeout=1)
                break
            except ValueError:
                assert processes[0].poll() is None, (log / "scheduler.log").read_text()
                assert time.monotonic() < deadline, "the scheduler did not start"
                time.sleep(0.2)
        processes.append(
            subprocess.Popen(
                [DASK, "worker", address, "--nworkers", "2", "--nthreads", "1"]
                + ["--no-dashboard", "--host", "127.0.0.1"],
                env=ENV,
                cwd=log,
                start_new_session=True,  # its nannies and workers: one group to stop
                stdout=subprocess.DEVNULL,
                stderr=open(log / "worker.log", "w"),  # noqa: SIM115
            )
        )
        from distributed import Client

        with Client(address, set_as_default=False, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        if len(processes) > 1:  # workers hold nothing to save: stop them at once
            os.killpg(processes[1].pid, signal.SIGKILL)
        processes[0].terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.slow
def test_cli_fit_on_a_separately_started_cluster_equals_a_local_fit(scheduler, tmp_path):
    args = ["fit", "--sample", "moving-shapes", "--learning-frames", "20"]
    remote, _ = _cli(*args, "--out", str(tmp_path / "remote"), "--scheduler", scheduler)
    assert remote.returncode == 0, remote.stderr
    assert main([*args, "--out", str(tmp_path / "local")]) == 0
    for suffix in ("_gmm_distance.tif", "_gmm_mask.tif"):
        a = tifffile.imread(tmp_path / "remote" / f"moving-shapes{suffix}")
        b = tifffile.imread(tmp_path / "local" / f"moving-shapes{suffix}")
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "remote" / "moving-shapes_gmm_mask.tif"),
        tifffile.imread(tmp_path / "local" / "moving-shapes_gmm_mask.tif"),
    )
    a = load_model(tmp_path / "remote" / "moving-shapes_gmm_model.npz")
    b = load_model(tmp_path / "local" / "moving-shapes_gmm_model.npz")
    for name in ("weights", "means", "variances"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-6, atol=1e-6)
    assert sorted(p.name for p in (tmp_path / "remote").iterdir()) == sorted(
        p.name for p in (tmp_path / "local").iterdir()
    )


class _Silent:
    """A port that accepts connections and never says a word."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        return f"tcp://127.0.0.1:{self.sock.getsockname()[1]}"

    def __exit__(self, *exc):
        self.sock.close()


class _Http:
    """A web server: it answers whatever it is sent with an HTTP response."""

    def __enter__(self):
        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler
        )
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"tcp://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class _Nothing:
    """A port where nothing listens."""

    def __enter__(self):
        return f"tcp://127.0.0.1:{_free_port()}"

    def __exit__(self, *exc):
        pass


@pytest.mark.slow
def test_a_wrong_scheduler_address_is_one_line_and_exit_2_within_30_s(tmp_path):
    # Where nothing listens, a port that accepts and stays silent, and a web server: the
    # three commands run at once (each waits on the network, not the processor).
    with _Nothing() as closed, _Silent() as silent, _Http() as web:
        start = time.monotonic()
        runs = {
            address: subprocess.Popen(
                [sys.executable, "-m", "napari_gmm_bg.cli", "fit", "--sample", "moving-shapes"]
                + ["--out", str(tmp_path / name), "--scheduler", address],
                env=ENV,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name, address in (("closed", closed), ("silent", silent), ("web", web))
        }
        results = {address: run.communicate(timeout=60) for address, run in runs.items()}
        seconds = time.monotonic() - start
    for address, (_, stderr) in results.items():
        assert runs[address].returncode == 2, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and address in lines[0], stderr
    assert seconds < 30
    assert not any(tmp_path.iterdir())


def test_a_web_server_is_not_taken_for_a_scheduler():
    # dask's own client would send its handshake and read the web server's reply as a
    # message length (trying to allocate exabytes); the check reads first, with a limit.
    with _Http() as address, pytest.raises(ValueError, match="dask scheduler"):
        check_scheduler(address, timeout=1)
    with _Silent() as address, pytest.raises(ValueError, match="within 1 s"):
        check_scheduler(address, timeout=1)


def test_the_api_with_an_address_needs_no_default_client_and_closes_its_own(scheduler):
    import distributed

    from napari_gmm_bg import fit_background, make_sample

    clip = make_sample("moving-shapes", n_frames=20, shape=(64, 96), seed=2).video
    with pytest.raises(ValueError):
        distributed.default_client()  # no default client in this process
    model = fit_background(clip, learning_frames=10, client=scheduler)
    local = fit_background(clip, learning_frames=10)
    np.testing.assert_allclose(model.means, local.means, rtol=1e-6, atol=1e-6)
    assert not [c for c in distributed.client._global_clients.values() if c.status == "running"]


def test_a_damaged_video_decoded_on_the_workers_is_one_line_and_exit_2(scheduler, tmp_path):
    # The workers decode the frames: the damage they meet reaches the command, which
    # writes nothing (msmpeg4 conceals this damage and flags the frame).
    from tests.io.bad_inputs import encode_concealed_case

    _, damaged, _ = encode_concealed_case(tmp_path / "clip", "msmpeg4.avi")
    before = sorted(os.listdir(damaged.parent))
    out = tmp_path / "out"
    result, _ = _cli(
        "fit", str(damaged), "--out", str(out), "--scheduler", scheduler, "--learning-frames", "96"
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if "fast kernels" not in line]
    assert len(lines) == 1 and f"video {damaged.name} is damaged" in lines[0], lines
    assert not out.exists()
    assert sorted(os.listdir(damaged.parent)) == before
