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
    try:
        return Client(str(client), timeout="5s", set_as_default=False)
    except OSError as exc:
        raise ValueError(f"cannot reach a dask scheduler at {client}: {exc}") from None


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
