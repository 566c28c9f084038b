"""Low-level npz plumbing: memory-map members of an uncompressed zip, and assemble npz files from raw parts.

An ``.npz`` is a zip of ``.npy`` members. A member stored without compression sits in the zip as
its ``.npy`` bytes, so ``np.memmap`` at the member's data offset gives the array without reading
it (O(1) open). :class:`RawSink` streams one array's rows to a temporary raw file;
:func:`assemble_npz` writes the zip at the end, each member a ``.npy`` header plus the raw bytes
copied in blocks, so writing never holds a whole array in memory.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterable

import numpy as np

from tracegen.errors import TraceFormatError

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes
_BLOCK = 1 << 24


def _member_data_offset(f, info: zipfile.ZipInfo, path) -> int:
    f.seek(info.header_offset)
    raw = f.read(_LOCAL_HEADER.size)
    if len(raw) != _LOCAL_HEADER.size:
        raise TraceFormatError(f"zip member {info.filename!r} is truncated", path)
    fields = _LOCAL_HEADER.unpack(raw)
    if fields[0] != b"PK\x03\x04":
        raise TraceFormatError(f"zip member {info.filename!r} has a corrupt local header", path)
    return info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10]


class NpzArchive:
    """Open an npz; ``get(name, mmap=True)`` returns a read-only memmap for stored members."""

    def __init__(self, path):
        self.path = os.fspath(path)
        try:
            self.zf = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
            raise TraceFormatError(
                f"not a valid npz/zip file: truncated or corrupt ({e})", self.path
            ) from None
        self.infos = {i.filename: i for i in self.zf.infolist()}
        self.size = os.path.getsize(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.zf.close()

    def names(self) -> list[str]:
        """Array names (members ending in ``.npy``, suffix removed) and other member names as they are."""
        return [n[:-4] if n.endswith(".npy") else n for n in self.infos]

    def has(self, name: str) -> bool:
        return name + ".npy" in self.infos or name in self.infos

    def read_bytes(self, name: str) -> bytes:
        try:
            return self.zf.read(name)
        except (zipfile.BadZipFile, OSError, EOFError, KeyError, zipfile.LargeZipFile, zlib.error) as e:
            raise TraceFormatError(f"cannot read member {name!r} ({e})", self.path) from None

    def get(self, name: str, mmap: bool = True) -> np.ndarray:
        info = self.infos.get(name + ".npy") or self.infos.get(name)
        if info is None:
            raise TraceFormatError(f"missing array {name!r}", self.path)
        if mmap and info.compress_type == zipfile.ZIP_STORED:
            with open(self.path, "rb") as f:
                start = _member_data_offset(f, info, self.path)
                f.seek(start)
                try:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                    else:
                        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                except (ValueError, OSError, EOFError) as e:
                    raise TraceFormatError(
                        f"array {name!r} has a corrupt .npy header ({e})", self.path
                    ) from None
                data = f.tell()
            if dtype.hasobject:
                raise TraceFormatError(
                    f"array {name!r} holds Python objects; refusing to unpickle", self.path
                )
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            end = start + info.file_size
            if data + nbytes > end or end > self.size:
                raise TraceFormatError(f"array {name!r} is truncated ({nbytes} bytes expected)", self.path)
            if nbytes == 0:
                return np.empty(shape, dtype)
            return np.memmap(
                self.path, dtype=dtype, mode="r", offset=data, shape=shape, order="F" if fortran else "C"
            )
        try:
            with self.zf.open(info) as m:
                return np.lib.format.read_array(m, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise TraceFormatError(f"cannot read array {name!r} ({e})", self.path) from None


def _rows_from_stream(m, shape, dtype, rows_per_block: int):
    tail = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    row_bytes = tail * dtype.itemsize
    done = 0
    while done < shape[0]:
        k = min(rows_per_block, shape[0] - done)
        data = m.read(k * row_bytes)
        if len(data) != k * row_bytes:
            raise EOFError("member ends early")
        yield np.frombuffer(data, dtype=dtype).reshape((k, *shape[1:]))
        done += k


def iter_rows(archive: NpzArchive, name: str, rows_per_block: int = 1 << 18):
    """``(shape, dtype, blocks)`` of a C-ordered member, read ``rows_per_block`` rows at a time (memory-mapped
    when stored, streamed through the decompressor when deflated), so a huge member never sits in memory
    twice."""
    info = archive.infos.get(name + ".npy") or archive.infos.get(name)
    if info is None:
        raise TraceFormatError(f"missing array {name!r}", archive.path)
    if info.compress_type == zipfile.ZIP_STORED:
        a = archive.get(name, mmap=True)
        if a.ndim == 0:
            a = a.reshape(1)
        return a.shape, a.dtype, (a[i : i + rows_per_block] for i in range(0, a.shape[0], rows_per_block))
    m = archive.zf.open(info)
    try:
        version = np.lib.format.read_magic(m)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(m)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(m)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        m.close()
        raise TraceFormatError(f"array {name!r} has a corrupt .npy header ({e})", archive.path) from None
    if dtype.hasobject:
        m.close()
        raise TraceFormatError(f"array {name!r} holds Python objects; refusing to unpickle", archive.path)
    if fortran or len(shape) == 0:
        m.close()
        a = archive.get(name, mmap=False).reshape(shape if shape else (1,))
        a = np.ascontiguousarray(a)
        return a.shape, a.dtype, (a[i : i + rows_per_block] for i in range(0, a.shape[0], rows_per_block))

    def blocks():
        try:
            yield from _rows_from_stream(m, shape, dtype, rows_per_block)
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise TraceFormatError(f"array {name!r} is truncated or corrupt ({e})", archive.path) from None
        finally:
            m.close()

    return tuple(shape), dtype, blocks()


class RawSink:
    """Append rows of a fixed dtype and trailing shape to a temporary raw file.

    No file descriptor is held between appends (each append opens the file, writes and closes it): a
    stream writer keeps two sinks per table, and Meta's 856-table traces would otherwise need 1,712 open
    files, past the usual limit of 1,024 (``ulimit -n``)."""

    def __init__(self, folder: str, dtype, tail: tuple[int, ...] = ()):
        self.dtype = np.dtype(dtype)
        self.tail = tuple(tail)
        fd, self.path = tempfile.mkstemp(prefix=".tracegen-part-", suffix=".raw", dir=folder)
        os.close(fd)
        self.rows = 0

    def append(self, arr: np.ndarray) -> None:
        a = np.ascontiguousarray(arr, dtype=self.dtype)
        if a.shape[1:] != self.tail:
            raise ValueError(f"expected rows of shape {self.tail}, got {a.shape[1:]}")
        if a.size:
            with open(self.path, "ab") as f:
                a.tofile(f)
        self.rows += a.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.rows, *self.tail)

    def finish(self) -> None:
        """Nothing is left open between appends (kept for the writers that call it)."""

    def discard(self) -> None:
        if os.path.exists(self.path):
            os.unlink(self.path)


def make_sinks(folder: str, specs) -> list[RawSink]:
    """Sinks for ``specs`` (``(dtype, tail)`` pairs); if making one fails (a full disk, Ctrl-C), the ones
    already made are removed before the error propagates, so no ``.tracegen-part-*`` file is left behind."""
    sinks: list[RawSink] = []
    try:
        for dtype, tail in specs:
            sinks.append(RawSink(folder, dtype, tail))
    except BaseException:
        for s in sinks:
            s.discard()
        raise
    return sinks


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    import io

    buf = io.BytesIO()
    d = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_2_0(buf, d) if len(
        repr(d)
    ) > 60000 else np.lib.format.write_array_header_1_0(buf, d)
    return buf.getvalue()


def assemble_npz(out_path: str, members: Iterable[tuple[str, object]], compress: bool = False) -> None:
    """Write an npz at ``out_path`` from ``(name, array | RawSink | bytes)`` members, in order.

    ``bytes`` members are stored as they are (e.g. ``metadata.json``); arrays and sinks become
    ``name.npy``. Sinks are copied block by block.
    """
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(out_path, "w", compression=mode, allowZip64=True) as zf:
        for name, obj in members:
            if isinstance(obj, (bytes, bytearray)):
                zf.writestr(
                    zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), bytes(obj), compress_type=mode
                )
                continue
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = mode
            with zf.open(info, "w", force_zip64=True) as w:
                if isinstance(obj, RawSink):
                    obj.finish()
                    w.write(_npy_header(obj.dtype, obj.shape))
                    with open(obj.path, "rb") as r:
                        while True:
                            block = r.read(_BLOCK)
                            if not block:
                                break
                            w.write(block)
                else:
                    a = np.asarray(obj)
                    if a.dtype.hasobject:
                        raise ValueError(f"array {name!r} has dtype object")
                    w.write(_npy_header(a.dtype, a.shape))
                    a = np.ascontiguousarray(a)
                    flat = a.reshape(-1)
                    step = max(1, _BLOCK // max(1, a.dtype.itemsize))
                    for i in range(0, flat.shape[0], step):
                        w.write(flat[i : i + step].tobytes())
