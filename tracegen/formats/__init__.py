"""Readers and writers of the trace formats people already hold; the registry ``FORMATS``.

Public API: :data:`FORMATS` (stable names used by ``--from``/``--to``), :func:`detect`, :func:`read`,
:func:`write` and :func:`open_writer` (streaming, for traces larger than memory). One module per
format family: :mod:`.native` (``npz``), :mod:`.dlrm` (``dlrm-npz``, ``mlperf-bin``, ``dlrm-trace``,
``dlrm-trace-bin``, ``dlrm-dist``), :mod:`.criteo` (``criteo-tsv``, ``criteo-csv``), :mod:`.tbe`
(``tbe-pt``), :mod:`.cache` (``oracle-general``, ``lcs-csv``), :mod:`.plain` (``txt``, ``npy``).
Every reader returns a validated :class:`~tracegen.trace.Trace` and raises
:class:`~tracegen.errors.TracegenError` naming the file; every writer is atomic and never replaces
an existing file unless ``force=True``. The format spec is ``traces/README.md``.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import zlib
from collections.abc import Callable

import numpy as np

from tracegen.errors import TraceFormatError, TracegenError
from tracegen.formats import cache, criteo, dlrm, native, plain, tbe
from tracegen.formats._common import check_flat_id_space, strip_bom
from tracegen.trace import Table, Trace

__all__ = ["FORMATS", "Format", "concat", "detect", "open_writer", "read", "write"]


@dataclasses.dataclass(frozen=True)
class Format:
    """One registered format: its stable ``name``, file extensions, and what it can do."""

    name: str
    description: str
    extensions: tuple[str, ...]
    reader: Callable | None
    writer: Callable | None
    stream_writer: Callable | None = None  # class(path, names=, cardinalities=, force=, **options)
    single_table: bool = False  # holds one id sequence (multi-table traces need table=)

    @property
    def is_trace(self) -> bool:
        return self.reader is not None


def _crit(fmt):
    def reader(path, *, max_ind_range: int = -1, progress: bool | None = None):
        return criteo.read_criteo(path, fmt, max_ind_range=max_ind_range, progress=progress)

    return reader


def _buffered(writer: Callable) -> Callable:
    def make(path, *, names, cardinalities, force: bool = False, **options):
        return BufferedWriter(path, writer, names=names, cardinalities=cardinalities, force=force, **options)

    return make


FORMATS: dict[str, Format] = {
    f.name: f
    for f in [
        Format(
            "dlrm-npz",
            "DLRM reference processed npz (X_cat, X_int, y, counts)",
            (".npz",),
            dlrm.read_dlrm_npz,
            dlrm.write_dlrm_npz,
            dlrm.DlrmNpzStreamWriter,
        ),
        Format(
            "npz",
            "native tracegen npz (per-table values/offsets + metadata.json; memory-mapped)",
            (".npz",),
            native.read_npz,
            native.write_npz,
            native.NpzStreamWriter,
        ),
        Format(
            "criteo-tsv",
            "raw Criteo text, TAB separated, no header (Kaggle train.txt, Terabyte day_N)",
            (".txt", ".tsv"),
            _crit("criteo-tsv"),
            None,
        ),
        Format(
            "criteo-csv",
            "raw Criteo text, CSV with a label,I1..I13,C1..C26 header",
            (".csv",),
            _crit("criteo-csv"),
            None,
        ),
        Format(
            "mlperf-bin",
            "MLPerf binary: 40 int32 per sample (y, 13 X_int, 26 X_cat)",
            (".bin",),
            dlrm.read_mlperf_bin,
            dlrm.write_mlperf_bin,
            dlrm.MlperfBinStreamWriter,
        ),
        Format(
            "dlrm-trace",
            "DLRM reference trace log: ids separated by ', '",
            (".log",),
            dlrm.read_dlrm_trace,
            dlrm.write_dlrm_trace,
            lambda path, **kw: dlrm.DlrmTraceStreamWriter(path, binary=False, **kw),
            single_table=True,
        ),
        Format(
            "dlrm-trace-bin",
            "DLRM reference binary trace: raw little-endian uint64 ids",
            (".bin",),
            dlrm.read_dlrm_trace_bin,
            dlrm.write_dlrm_trace_bin,
            lambda path, **kw: dlrm.DlrmTraceStreamWriter(path, binary=True, **kw),
            single_table=True,
        ),
        Format(
            "dlrm-dist",
            "DLRM reference distribution log (unique ids, 1-based stack distances, cdf); "
            "not a trace: tracegen.formats.dlrm.read_dist",
            (".log",),
            None,
            None,
        ),
        Format(
            "tbe-pt",
            "Meta dlrm_datasets / FBGEMM TBE requests: torch.save((indices, offsets, lengths))",
            (".pt", ".pth"),
            tbe.read_tbe,
            tbe.write_tbe,
            tbe.TbeStreamWriter,
        ),
        Format(
            "oracle-general",
            "libCacheSim oracleGeneral: 24-byte records (time, id, size, next access); its .lcs traces too",
            (".bin", ".oraclegeneral"),
            cache.read_oracle_general,
            cache.write_oracle_general,
            cache.OracleGeneralStreamWriter,
            single_table=True,
        ),
        Format(
            "lcs-csv",
            "libCacheSim csv trace with a header (id column: obj_id/lbn/... or id_col)",
            (".csv",),
            cache.read_lcs_csv,
            cache.write_lcs_csv,
            cache.LcsCsvStreamWriter,
            single_table=True,
        ),
        Format(
            "txt",
            "plain text, one integer id per line",
            (".txt",),
            plain.read_txt,
            plain.write_txt,
            plain.TxtStreamWriter,
            single_table=True,
        ),
        Format(
            "npy",
            "NumPy .npy: 1-D ids, or a (samples, tables) matrix",
            (".npy",),
            plain.read_npy,
            plain.write_npy,
            plain.NpyStreamWriter,
            single_table=True,
        ),
    ]
}

# the default format written for an extension
_WRITE_DEFAULT = {
    ".npz": "npz",
    ".bin": "oracle-general",
    ".oraclegeneral": "oracle-general",
    ".log": "dlrm-trace",
    ".pt": "tbe-pt",
    ".pth": "tbe-pt",
    ".csv": "lcs-csv",
    ".txt": "txt",
    ".npy": "npy",
}


def _check_name(fmt: str, path=None) -> Format:
    if fmt not in FORMATS:
        raise TracegenError(f"unknown format {fmt!r}; formats are {', '.join(FORMATS)}", path)
    return FORMATS[fmt]


def _ext(path) -> str:
    base = os.path.basename(os.fspath(path)).lower()
    for e in (".oraclegeneral.bin", ".oraclegeneral"):
        if base.endswith(e):
            return ".bin"
    return os.path.splitext(base)[1]


def _head(path, n: int = 65536) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _sniff_text(path, head: bytes | None = None) -> str | None:
    head = strip_bom(_head(path) if head is None else head)
    if not head:
        raise TraceFormatError("file is empty", path)
    if b"\x00" in head:
        return None
    first = head.split(b"\n", 1)[0].rstrip(b"\r")
    lines = [ln for ln in head.split(b"\n") if ln.strip()]
    n_fields = first.count(b"\t") + 1
    if n_fields == criteo.N_FIELDS:
        return "criteo-tsv"
    if n_fields == criteo.N_FIELDS - 1 and os.path.basename(os.fspath(path)).lower().startswith("test"):
        return "criteo-tsv"  # Kaggle's test.txt: no label; any other 39-field file may be a truncated line
    if abs(n_fields - criteo.N_FIELDS) <= 4:  # tab separated, about Criteo's width: not a plain id list
        hint = ""
        if n_fields == criteo.N_FIELDS - 1:
            hint = "; a file without labels (Kaggle's test.txt) has 39: read it with --from criteo-tsv"
        raise TraceFormatError(
            f"criteo-tsv: line 1 has {n_fields} fields, expected {criteo.N_FIELDS} "
            f"(label, {criteo.N_INT} dense, {criteo.N_CAT} categorical){hint}",
            path,
        )
    low = first.lower()
    n_commas = first.count(b",") + 1
    if low.startswith(b"label,") or (n_commas in (criteo.N_FIELDS, criteo.N_FIELDS - 1) and b"i1" in low):
        return "criteo-csv"
    if n_commas == criteo.N_FIELDS:
        return "criteo-csv"
    header = [c.strip().strip(b'"').strip() for c in low.split(b",")]
    if b"i1" in header and b"c26" in header:  # Criteo columns after an index column (pandas' to_csv)
        return "criteo-csv"
    cols = [c.strip().strip(b'"').strip().lower() for c in first.split(b",")]  # a quoted CSV header too
    if any(c.decode("ascii", "replace") in cache.ID_COLUMNS for c in cols):  # a header (one column too)
        return "lcs-csv"
    tab_cols = [c.strip().strip(b'"').strip().lower() for c in first.split(b"\t")]
    if len(tab_cols) > 1 and any(c.decode("ascii", "replace") in cache.ID_COLUMNS for c in tab_cols):
        return "lcs-csv"  # a tab-separated header (libCacheSim's csv reader takes delimiter=\t)
    if len(lines) == 3 and b"." in lines[2] and b"," in lines[0]:
        return "dlrm-dist"
    if b", " in first or (b"," in first and len(lines) == 1):
        return "dlrm-trace"
    if len(cols) == 1 and first.strip():
        return "txt"
    if len(cols) > 1:
        return "lcs-csv"
    return None


def _bin_sample(p: str, size: int, rec: int, n: int = 64) -> np.ndarray:
    """Up to ``n`` records of ``rec`` bytes from the start and ``n`` from the end, as little-endian int32."""
    total = size // rec
    with open(p, "rb") as f:
        head = f.read(min(total, n) * rec)
        tail = b""
        if total > n:
            f.seek((total - min(total - n, n)) * rec)
            tail = f.read()
    return np.frombuffer(head + tail, dtype="<i4").reshape(-1, rec // 4)


def _sniff_bin_ids(p: str, size: int) -> str | None:
    """``mlperf-bin`` or ``dlrm-trace-bin`` for a ``.bin`` that is not oracleGeneral, from content.

    Raw uint64 ids below 2**32 (the usual dlrm-trace-bin, and what tracegen writes for table ids)
    have every odd 32-bit word zero; read as 40-field MLPerf records that would make 7 dense features
    and 13 of the 26 tables all zero, which real MLPerf data never is. Too few records to tell:
    refuse rather than guess."""
    rec = 4 * dlrm.MLPERF_FIELDS
    mlperf_ok = u64_small = False
    n_rec = 0
    if size % rec == 0:
        r = _bin_sample(p, size, rec)
        n_rec = r.shape[0]
        mlperf_ok = bool(np.isin(r[:, 0], (0, 1)).all() and (r[:, 1:] >= 0).all())
        u64_small = bool((r[:, 1::2] == 0).all())
    elif size % 8 == 0:
        return "dlrm-trace-bin"
    if not mlperf_ok:
        return "dlrm-trace-bin" if size % 8 == 0 else None
    if not u64_small:
        return "mlperf-bin"
    if n_rec >= 4:
        return "dlrm-trace-bin"
    raise TraceFormatError(
        "ambiguous binary trace: say --from mlperf-bin or --from dlrm-trace-bin", p
    )


# libCacheSim's other binary layouts, by the names its traces carry (not oracleGeneral itself)
_OTHER_ORACLE = r"oracle(?:generalop|sys|sim|cf|akamai|wiki|twr)[a-z0-9]*"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _refuse_zstd(p: str) -> None:
    """libCacheSim ships its traces zstd-compressed (``*.oracleGeneral.zst``); no reader here inflates zstd,
    and the compressed bytes must never be read as records."""
    if _head(p, 4) == ZSTD_MAGIC:
        raise TraceFormatError("zstd-compressed: decompress it first (zstd -d FILE), then read the result", p)


# what the DLRM reference writes beside its data: member names -> what the file is
_DLRM_SIDE_FILES = {
    ("counts",): "table sizes (*_fea_count.npz: counts)",
    ("counts", "counts_from_data"): "table sizes (*_fea_count.npz: counts)",
    ("total_per_file",): "samples per day (*_day_count.npz: total_per_file)",
    ("unique",): "category dictionary of one table (*_fea_dict_N.npz: unique)",
}


def _tar_error(p: str) -> TraceFormatError:
    """Criteo ships Kaggle's train.txt and test.txt as dac.tar.gz: the archive itself is no trace."""
    return TraceFormatError("a tar archive (like Criteo's dac.tar.gz): extract it (tar xf FILE) and read its files", p)


def detect(path) -> str:
    """The format name of ``path``, from its extension and content (magic bytes, first lines)."""
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise TracegenError("no such file" if not os.path.exists(p) else "is not a file", p)
    _refuse_zstd(p)
    if cache.is_lcs(p):  # libCacheSim's lcs trace (*.lcs): its header says so whatever the name
        return "oracle-general"
    other = re.search(_OTHER_ORACLE, os.path.basename(p), re.IGNORECASE)
    if other:  # oracleSysTwrNS (34-byte records), oracleGeneralOpNS, ... would be misread as other binaries
        raise TraceFormatError(
            f"a libCacheSim {other.group(0)} trace? only its oracleGeneral layout (24-byte records) is "
            "read: convert the trace to oracleGeneral with libCacheSim first",
            p,
        )
    ext = _ext(p)
    if ext == ".npz":
        with native.NpzArchive(p) as ar:
            if native.is_native(ar):
                return "npz"
            if ar.has("X_cat"):
                return "dlrm-npz"
            if ar.has("X_cat_t"):
                raise dlrm.intermediate_day_error(p)
            side = _DLRM_SIDE_FILES.get(tuple(sorted(ar.names())))
            if side:
                raise TraceFormatError(f"the DLRM reference's {side}, not a trace: read the data file beside it", p)
            keys = ", ".join(ar.names()[:8])
        raise TraceFormatError(
            f"an npz with neither metadata.json (native) nor X_cat (DLRM); it holds: {keys} "
            "(to read one id array, save it as .npy)",
            p,
        )
    if ext == ".npy":
        return "npy"
    if ext in (".pt", ".pth"):
        return "tbe-pt"
    if ext == ".bin":
        size = os.path.getsize(p)
        if size == 0:
            raise TraceFormatError("file is empty", p)
        named_og = "oraclegeneral" in os.path.basename(p).lower()
        if named_og and size % cache.OG_DTYPE.itemsize:
            raise TraceFormatError(
                f"size {size} is not a multiple of the 24-byte oracleGeneral record: truncated?", p
            )
        if named_og or cache.plausible_oracle_general(p):  # the name wins: a prefix of a longer trace
            return "oracle-general"  # points past its end and fails the content check
        if dlrm._find_fea_count(p) is not None:  # its own <stem>_fea_count.npz, never another stem's
            return "mlperf-bin"
        guess = _sniff_bin_ids(p, size)
        if guess is not None:
            return guess
        raise TraceFormatError(
            f"size {size} is not a multiple of 24 (oracle-general), 160 (mlperf-bin) or 8 "
            "(dlrm-trace-bin uint64 ids): truncated? (or name the format with --from)",
            p,
        )
    head = _head(p, 512 + 8)
    if head[257:262] == b"ustar":
        raise _tar_error(p)
    if head[:2] == b"PK":
        with native.NpzArchive(p) as ar:
            if native.is_native(ar):
                return "npz"
            if ar.has("X_cat"):
                return "dlrm-npz"
            if ar.has("data.pkl") or any(n.endswith("/data.pkl") for n in ar.infos):
                return "tbe-pt"
    if head[:6] == b"\x93NUMPY":
        return "npy"
    if head[:2] == b"\x1f\x8b":
        import gzip

        try:
            with gzip.open(p, "rb") as g:
                inner = g.read(65536)
        except (OSError, EOFError, zlib.error) as e:
            raise TraceFormatError(f"a corrupt gzip file ({e})", p) from None
        if inner[257:262] == b"ustar":
            raise _tar_error(p)
        base = os.path.basename(p).lower()
        if base.endswith((".pt.gz", ".pth.gz")) or inner[:2] == b"PK" or inner[:1] == b"\x80":
            return "tbe-pt"  # Meta's dlrm_datasets ship fbgemm_t856_bs65536.pt.gz
        guess = _sniff_text(p, inner)
        if guess in ("criteo-tsv", "criteo-csv"):
            return guess
        raise TraceFormatError(
            "gzip-compressed; only raw Criteo text and tbe-pt (.pt.gz) are read compressed: decompress it first",
            p,
        )
    guess = _sniff_text(p)
    if guess is not None:
        if ext == ".log" and guess not in ("dlrm-dist", "dlrm-trace"):
            guess = "dlrm-trace"
        return guess
    if ext == ".log" and os.path.getsize(p) % 8 == 0:
        return "dlrm-trace-bin"  # the reference writes its binary trace under the same trace.log names
    raise TraceFormatError(
        f"cannot detect the format (extension {ext or 'none'!r}); give it with --from ({', '.join(FORMATS)})",
        p,
    )


def _call(func: Callable, what: str, fmt: str, path, *args, **options):
    params = inspect.signature(func).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        unknown = [k for k in options if k not in params]
        if unknown:
            accepted = [k for k, p in params.items() if p.kind == p.KEYWORD_ONLY and k != "force"]
            raise TracegenError(
                f"{fmt} {what} takes no option {', '.join(map(repr, unknown))}"
                + (f" (it takes {', '.join(accepted)})" if accepted else ""),
                path,
            )
    return func(*args, **options)


def read(path, fmt: str | None = None, **options) -> Trace:
    """Read a trace file (format detected unless ``fmt``), validated; errors name the file.

    Options by format: ``densify`` (``oracle-general``, ``lcs-csv``, ``txt``, ``npy``, ``dlrm-trace*``),
    ``id_col`` (``lcs-csv``), ``max_ind_range`` (``criteo-*``), ``validate``/``mmap`` (``npz``),
    ``cardinalities``/``names`` (``tbe-pt``).
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise TracegenError("no such file", p)
    if os.path.isdir(p):
        raise TracegenError("is a directory, not a trace file", p)
    if fmt is not None and os.path.isfile(p):
        _refuse_zstd(p)
    fmt = fmt or detect(p)
    f = _check_name(fmt, p)
    if f.reader is None:
        return dlrm.read_dist_as_error(p)
    try:
        return _call(f.reader, "reader", fmt, p, p, **options)
    except TracegenError:
        raise
    except (OSError, EOFError, MemoryError, zlib.error) as e:
        raise TraceFormatError(f"cannot read as {fmt} ({type(e).__name__}: {e})", p) from None
    except (ValueError, IndexError, KeyError, TypeError) as e:
        # a malformed file that slipped past the explicit checks: still one line naming the file
        raise TraceFormatError(f"corrupt or not {fmt} ({type(e).__name__}: {e})", p) from None


def output_format(path, fmt: str | None = None) -> str:
    """The format to write ``path`` in: ``fmt``, or the default for its extension."""
    if os.fspath(path) == "-":
        raise TracegenError("trace files are written atomically to a named file, not to stdout ('-')", path)
    if fmt:
        f = _check_name(fmt, path)
        if f.writer is None:
            hint = (
                "use tracegen.formats.dlrm.write_dist"
                if fmt == "dlrm-dist"
                else "it is raw input; write dlrm-npz or npz"
            )
            raise TracegenError(f"cannot write {fmt}: {hint}", path)
        return fmt
    ext = _ext(path)
    if ext not in _WRITE_DEFAULT:
        raise TracegenError(
            f"cannot tell the output format from extension {ext or 'none'!r}; give it with --to "
            f"({', '.join(n for n, f in FORMATS.items() if f.writer is not None)})",
            path,
        )
    return _WRITE_DEFAULT[ext]


def write(trace: Trace, path, fmt: str | None = None, *, force: bool = False, **options) -> None:
    """Write ``trace`` to ``path`` (format from ``fmt`` or the extension), atomically."""
    fmt = output_format(path, fmt)
    f = FORMATS[fmt]
    _call(f.writer, "writer", fmt, path, trace, os.fspath(path), force=force, **options)


def open_writer(path, fmt: str | None = None, *, names, cardinalities, force: bool = False, **options):
    """A streaming writer: ``.write(trace_chunk)`` for consecutive samples (all tables), ``.close()``
    assembles the file and renames it into place (also on leaving a ``with`` block; an exception
    discards everything). ``cardinalities`` may be updated on the writer before ``close``."""
    fmt = output_format(path, fmt)
    f = FORMATS[fmt]
    if f.stream_writer is None:
        make = _buffered(f.writer)
    else:
        make = f.stream_writer
    if f.writer is not None:  # reject options the format does not take, before any work
        params = inspect.signature(f.writer).parameters
        unknown = [k for k in options if k not in params]
        if unknown:
            raise TracegenError(f"{fmt} writer takes no option {', '.join(map(repr, unknown))}", path)
    if options.get("table") == "all":  # before any work: flattened ids must fit int64
        check_flat_id_space(cardinalities, path)
    return make(os.fspath(path), names=list(names), cardinalities=list(cardinalities), force=force, **options)


def concat(chunks: list[Trace], cardinalities=None) -> Trace:
    """Consecutive chunks of samples as one trace (cardinalities: the given ones or the largest seen)."""
    if not chunks:
        raise TracegenError("no samples")
    first = chunks[0]
    tables = []
    for j, t0 in enumerate(first.tables):
        vals = [np.asarray(c.tables[j].values, np.int64) for c in chunks]
        offs, base = [np.zeros(1, np.int64)], 0
        for c in chunks:
            o = np.asarray(c.tables[j].offsets, np.int64)
            offs.append(o[1:] - o[0] + base)
            base += int(o[-1] - o[0])
        card = (
            int(cardinalities[j])
            if cardinalities is not None
            else max(int(c.tables[j].cardinality) for c in chunks)
        )
        derived = cardinalities is None and any(c.tables[j].cardinality_from_data for c in chunks)
        tables.append(Table(t0.name, card, np.concatenate(vals), np.concatenate(offs), derived))
    dense = np.concatenate([c.dense for c in chunks]) if first.dense is not None else None
    labels = np.concatenate([c.labels for c in chunks]) if first.labels is not None else None
    return Trace(tables, dense=dense, labels=labels)


class BufferedWriter:
    """Streaming interface for formats written in one go: chunks are kept in memory until close."""

    def __init__(self, path, writer: Callable, *, names, cardinalities, force: bool = False, **options):
        from tracegen._util import check_output

        check_output(path, force)
        self.path, self.writer, self.force, self.options = os.fspath(path), writer, force, options
        self.names, self.cardinalities = list(names), list(cardinalities)
        self.chunks: list[Trace] = []
        self._closed = False

    def write(self, chunk: Trace) -> None:
        if chunk.n_tables != len(self.names):
            raise TracegenError(
                f"chunk has {chunk.n_tables} tables, writer expects {len(self.names)}", self.path
            )
        self.chunks.append(chunk)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.chunks:
            raise TracegenError("trace is empty (no samples)", self.path)
        trace = concat(self.chunks, self.cardinalities)
        for t, n in zip(trace.tables, self.names):
            t.name = n
        self.chunks = []
        self.writer(trace, self.path, force=self.force, **self.options)

    def abort(self) -> None:
        self._closed = True
        self.chunks = []

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close() if exc_type is None else self.abort()
