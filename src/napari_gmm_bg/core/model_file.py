"""Reading a saved model's ``.npz`` file defensively: headers before data, no pickles.

A ``.npz`` file is a zip archive of ``.npy`` members.  Each member's header (shape and
dtype) is read and checked by the caller before any of its data is, and the data are
read exactly as long as the header says (never more, and a short member is an error),
so a crafted file cannot make the loader allocate more than the arrays it declares.
"""

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

#: The largest metadata string (characters): a saved model's is about 600.
MAX_META_CHARS = 2**16


class ModelFileError(ValueError):
    """The file is not a valid saved model (the message says why)."""


class NpzMembers:
    """The ``.npy`` members of a ``.npz`` file, their headers read on opening.

    Parameters
    ----------
    path : pathlib.Path
        The file.
    names : sequence of str
        The members required (without ``.npy``).

    Raises
    ------
    ModelFileError
        If the file is not a zip archive, a member is missing, or a header is not a
        valid ``.npy`` header of a plain (non-object) dtype.
    """

    def __init__(self, path: Path, names: tuple[str, ...]) -> None:
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise ModelFileError(f"not a .npz archive ({exc})") from None
        self.headers: dict[str, tuple[tuple[int, ...], np.dtype, bool]] = {}
        self._sizes: dict[str, tuple[int, int]] = {}  # (header bytes, member bytes)
        try:
            infos = {info.filename: info for info in self._zip.infolist()}
            for name in names:
                info = infos.get(f"{name}.npy")
                if info is None:
                    raise ModelFileError(f"it holds no {name!r} array")
                self.headers[name], header_bytes = self._header(info)
                self._sizes[name] = (header_bytes, info.file_size)
        except BaseException:
            self._zip.close()
            raise

    def _header(self, info: zipfile.ZipInfo) -> tuple[tuple, int]:
        try:
            with self._zip.open(info) as f:
                version = npy_format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = npy_format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = npy_format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
                header_bytes = f.tell()
        except Exception as exc:  # zip, zlib and header errors all mean "damaged"
            raise ModelFileError(f"the {info.filename} member is damaged ({exc})") from None
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
            raise ModelFileError(f"the {info.filename} member holds {dtype} values")
        return (tuple(shape), dtype, bool(fortran)), header_bytes

    def read(self, name: str) -> np.ndarray:
        """Read a member's data, exactly as many bytes as its (checked) header declares.

        Parameters
        ----------
        name : str
            The member, without ``.npy``.

        Returns
        -------
        numpy.ndarray
            Its array.
        """
        shape, dtype, fortran = self.headers[name]
        count = int(np.prod(shape, dtype=np.int64))
        nbytes = count * dtype.itemsize
        header_bytes, member_bytes = self._sizes[name]
        if member_bytes != header_bytes + nbytes:  # the archive's own record disagrees
            raise ModelFileError(
                f"the {name}.npy member holds {member_bytes - header_bytes} data bytes; "
                f"its header declares {nbytes}"
            )
        try:
            with self._zip.open(f"{name}.npy") as f:
                version = npy_format.read_magic(f)
                if version == (1, 0):
                    npy_format.read_array_header_1_0(f)
                else:
                    npy_format.read_array_header_2_0(f)
                data = bytearray(nbytes)
                view = memoryview(data)
                filled = 0
                while filled < nbytes:
                    got = f.readinto(view[filled : filled + 2**24])  # type: ignore[attr-defined]
                    if not got:
                        raise ValueError(f"{filled} of {nbytes} data bytes")
                    filled += got
                if f.read(1):
                    raise ValueError("more data than its header declares")
        except Exception as exc:
            raise ModelFileError(f"the {name}.npy member is damaged ({exc})") from None
        array = np.frombuffer(data, dtype=dtype, count=count)
        return array.reshape(shape, order="F" if fortran else "C")

    def close(self) -> None:
        """Close the archive."""
        self._zip.close()

    def __enter__(self) -> "NpzMembers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
