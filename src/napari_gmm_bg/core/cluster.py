"""dask.distributed helpers: which client to use, and results as they complete."""

from typing import Any


def cluster_results(futures: list, keys: list, client: Any) -> Any:
    """Yield ``(key, result)`` for each future as it completes, on ``client``'s loop.

    The client is passed explicitly: a client made for one call (the CLI's
    ``--scheduler``) is not the process's default client, which ``as_completed`` would
    otherwise look for.  Stopping the iteration (Cancel) or an error cancels the futures
    that are left, so the cluster is freed.

    Parameters
    ----------
    futures : list of distributed.Future
        The submitted tasks.
    keys : list
        What to yield with each future's result, in the order of ``futures``.
    client : distributed.Client
        The client that submitted them.

    Yields
    ------
    tuple
        ``(key, result)`` in completion order.
    """
    from distributed import as_completed

    position = {future.key: key for future, key in zip(futures, keys, strict=True)}
    try:
        for future in as_completed(futures, loop=client.loop):
            yield position[future.key], future.result()
    finally:  # cancelled or failed: free the cluster
        client.cancel(futures)


def without_cluster() -> Any:
    """Set dask, for a ``with`` block, to the choices it makes when no client exists.

    Local threads (``dask.threaded.get``) and task-based rechunking, given outright: left
    to choose, dask imports distributed (0.2-0.3 s) to look for a default client, which
    a fresh process (a command without ``--scheduler``, a warm-up child) cannot have.

    Returns
    -------
    contextlib.AbstractContextManager
        The configuration, set while its ``with`` block runs.
    """
    import dask
    import dask.threaded

    return dask.config.set({"scheduler": dask.threaded.get, "array.rechunk.method": "tasks"})


def as_client(client: Any) -> Any:
    """Return a dask.distributed Client: the one given, or one connected to an address.

    Parameters
    ----------
    client : distributed.Client or str
        A client, or a scheduler address such as ``tcp://10.0.0.5:8786``.

    Returns
    -------
    distributed.Client
        The client.

    Raises
    ------
    ValueError
        If no scheduler answers at the address.
    """
    from distributed import Client

    if isinstance(client, Client):
        return client
    address = str(client)
    check_scheduler(address)
    try:
        return Client(address, timeout=f"{CONNECT_TIMEOUT}s", set_as_default=False)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"cannot reach a dask scheduler at {address}: {exc}") from None


#: Seconds to wait for a scheduler to accept a connection and introduce itself.
CONNECT_TIMEOUT = 5.0
#: A scheduler's first message (its handshake) is a few hundred bytes.
_MAX_HANDSHAKE = 2**16


def check_scheduler(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Check that a dask scheduler answers at a ``tcp://`` address, within a time limit.

    A dask server speaks first: on a new connection it sends its handshake, a short
    length-prefixed message.  This reads it over a plain socket with a deadline, so an
    address where nothing listens, a port that accepts but never answers and a server
    of another kind (a web server, say) are each refused quickly, before dask's own
    client would wait forever or take a stranger's bytes for a message length.  Other
    schemes (``tls://``, ``ucx://``...) are left to dask's client.

    Parameters
    ----------
    address : str
        ``tcp://HOST:PORT`` (or ``HOST:PORT``).
    timeout : float
        Seconds for the connection and for the handshake, each.

    Raises
    ------
    ValueError
        If the address is malformed or no dask scheduler answers there in time.
    """
    import socket
    import struct

    scheme, _, location = address.rpartition("://")
    if scheme not in ("", "tcp"):
        return
    host, _, port_text = location.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
        if not host or not 0 < port < 65536:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"{address!r} is not a scheduler address like tcp://10.0.0.5:8786"
        ) from None
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            (size,) = struct.unpack("<Q", _receive(sock, 8))
            if not 8 <= size <= _MAX_HANDSHAKE:
                raise ValueError("it sent something other than a dask handshake")
            (n_frames,) = struct.unpack("<Q", _receive(sock, 8))
            if not 0 < n_frames <= 64:
                raise ValueError("it sent something other than a dask handshake")
            _receive(sock, size - 8)
    except TimeoutError:
        raise ValueError(f"no dask scheduler answered at {address} within {timeout:g} s") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"cannot reach a dask scheduler at {address}: {reason}") from None


def _receive(sock: Any, n: int) -> bytes:
    """Read exactly ``n`` bytes from a socket (its timeout applies to each read)."""
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            raise ValueError("it closed the connection without a dask handshake")
        data += part
    return data


def configured_client() -> Any:
    """Return the dask.distributed Client this process has set up, or None.

    A client created anywhere in the process (for example ``Client(address)`` typed in
    napari's console) becomes the default; the widgets use it when there is one.

    Returns
    -------
    distributed.Client or None
        The default client.
    """
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        return default_client()
    except ValueError:
        return None
