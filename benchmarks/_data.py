"""Where the shared reference clips live, for benchmarks (never needed by the tests)."""

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared(*parts: str) -> Path | None:
    """Path under ../shared/data, or None when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    return path if path.exists() else None
