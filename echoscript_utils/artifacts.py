"""Writing run products safely: atomic files, JSON, tables (CSV + LaTeX), stage metrics, content hashes and the
content-hashed cache.

Every product is written to a temporary file in the same folder and renamed into place, so a crash or a kill
never leaves a half-written file behind. Content hashes key every cache in the workbook, and every cache entry is
read, computed and written by :func:`cached` (JSON or ``.npy`` files).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from .errors import OutputError

__all__ = [
    "atomic_path",
    "atomic_write_text",
    "staged_dir",
    "cached",
    "ensure_dir",
    "file_hash",
    "json_default",
    "read_cached",
    "read_json",
    "read_metrics",
    "text_hash",
    "write_cached",
    "write_json",
    "write_metrics",
    "write_table",
]


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) or raise :class:`OutputError` naming it."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{p}: cannot create output folder ({exc.strerror}); choose a writable location") from None
    if not os.access(p, os.W_OK):
        raise OutputError(f"{p}: output folder is not writable; choose a writable location")
    return p


def _umask() -> int:
    """The process's file-creation mask (read without changing it where ``/proc`` allows)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _as_created(path: Path, *, folder: bool) -> None:
    """Give a ``mkstemp``/``mkdtemp`` path (created 0600/0700) the mode a plain ``open``/``mkdir`` would give it."""
    with contextlib.suppress(OSError):
        path.chmod((0o777 if folder else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on error removed.

    >>> with atomic_path("out/model.bin") as tmp:   # doctest: +SKIP
    ...     torch.save(state, tmp)
    """
    final = Path(path)
    ensure_dir(final.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix or final.suffix or ".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    _as_created(tmp_path, folder=False)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def staged_dir(path: str | os.PathLike, *, reuse: Callable[[Path], bool] | None = None,
               owned: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Build a whole folder of products beside ``path`` and swap it in only when every product is written.

    Yields a fresh staging folder next to ``path``. On success the old ``path`` (if any) is moved aside, the staging
    folder renamed onto ``path``, and the old one removed; its hidden entries (``.*``, e.g. a pipeline stamp) that
    the new folder lacks are carried over. On any error the staging folder is removed and ``path`` is left exactly
    as it was: a complete earlier product set, or nothing.

    Parameters
    ----------
    reuse : entries of the old folder (paths relative to it, files only) for which this returns True are
        hard-linked into the staging folder first, so content-keyed work (cue WAVs and their sidecars) is not redone.
        Safe because every writer here replaces files atomically instead of writing into them.
    owned : called on an existing non-empty ``path``; if it returns False the folder is refused with an
        :class:`~echoscript_utils.errors.OutputError` (it holds something else; nothing is replaced).
    """
    final = Path(path)
    if final.exists() and not final.is_dir():
        raise OutputError(f"{final}: exists and is not a folder; choose another output folder")
    if final.is_dir() and owned is not None and any(final.iterdir()) and not owned(final):
        raise OutputError(f"{final}: holds files this command did not write; choose a new or empty output folder")
    ensure_dir(final.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    _as_created(staging, folder=True)
    try:
        if final.is_dir() and reuse is not None:
            for src in final.rglob("*"):
                rel = src.relative_to(final)
                if src.is_file() and reuse(rel):
                    ensure_dir((staging / rel).parent)
                    try:
                        os.link(src, staging / rel)
                    except OSError:
                        shutil.copy2(src, staging / rel)
        yield staging
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            old.rmdir()
            final.rename(old)
            for hidden in old.glob(".*"):
                if not (staging / hidden.name).exists():
                    hidden.rename(staging / hidden.name)
        try:
            staging.rename(final)
        except OSError:
            if old is not None:
                old.rename(final)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def json_default(obj: Any) -> Any:
    """JSON encoder for numpy scalars/arrays, paths and sets."""
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def clean_floats(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: clean_floats(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_floats(v) for v in obj]
    return obj


def json_text(data: Any, *, indent: int = 2) -> str:
    """The workbook's one JSON serialisation: NaN/inf become null, keys sorted, so reruns are byte-stable."""
    data = json.loads(json.dumps(data, default=json_default))
    return json.dumps(clean_floats(data), indent=indent, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(path: str | os.PathLike, data: Any, *, indent: int = 2) -> Path:
    """Atomically write ``data`` as JSON (:func:`json_text`)."""
    return atomic_write_text(path, json_text(data, indent=indent))


def write_if_changed(path: str | os.PathLike, text: str) -> bool:
    """Atomically write ``text`` unless the file already holds exactly it; True when written."""
    p = Path(path)
    if p.is_file():
        try:
            if p.read_bytes() == text.encode("utf-8"):
                return False
        except OSError:
            pass
    atomic_write_text(p, text)
    return True


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_metrics(stage_dir: str | os.PathLike, metrics: dict[str, Any]) -> bool:
    """Write ``<stage_dir>/metrics.json`` (the stage contract), the one writer of that file; True when its bytes
    changed (an unchanged file keeps its mtime)."""
    return write_if_changed(Path(stage_dir) / "metrics.json", json_text(metrics))


def read_metrics(stage_dir: str | os.PathLike) -> dict[str, Any]:
    p = Path(stage_dir) / "metrics.json"
    return read_json(p) if p.is_file() else {}


def write_table(df, tables_dir: str | os.PathLike, name: str, *, caption: str | None = None,
                float_format: str = "%.3f", index: bool = False) -> tuple[Path, Path]:
    """Write ``df`` as ``<tables_dir>/<name>.csv`` and ``<name>.tex`` (booktabs LaTeX); returns both paths."""
    tables_dir = ensure_dir(tables_dir)
    csv_path = tables_dir / f"{name}.csv"
    tex_path = tables_dir / f"{name}.tex"
    atomic_write_text(csv_path, df.to_csv(index=index, float_format=float_format, lineterminator="\n"))
    latex = df.to_latex(index=index, float_format=lambda x: float_format % x, caption=caption,
                        label=f"tab:{name}", escape=True)
    atomic_write_text(tex_path, latex)
    return csv_path, tex_path


def file_hash(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (hex), read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def text_hash(*parts: Any, length: int = 16) -> str:
    """Short SHA-256 of the JSON form of ``parts`` (cache keys for settings, prompts, model ids)."""
    blob = json.dumps(parts, sort_keys=True, default=json_default).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


# ----------------------------------------------------------------------------------------- content-hashed cache
CacheFormat = Literal["json", "npy"]


def read_cached(path: str | os.PathLike, *, fmt: CacheFormat = "json",
                valid: Callable[[Any], bool] | None = None) -> Any:
    """The value cached at ``path``, or ``None`` when the file is absent, unreadable, cut short or fails ``valid``
    (a damaged entry is a miss, never an error: the caller computes it again).

    Args:
        path: the cache file, named by a content hash.
        fmt: ``"json"`` (any JSON value) or ``"npy"`` (one numpy array, read without pickles).
        valid: optional check of the value read; ``False`` (or an exception it raises) makes it a miss.
    """
    p = Path(path)
    if not p.is_file():
        return None
    try:
        value = read_json(p) if fmt == "json" else _load_npy(p)
        if valid is not None and not valid(value):
            return None
    except (OSError, ValueError, EOFError, KeyError, TypeError):
        return None
    return value


def write_cached(path: str | os.PathLike, value: Any, *, fmt: CacheFormat = "json",
                 indent: int | None = 2) -> Path:
    """Write one cache entry atomically: JSON by :func:`write_json` (``indent`` as given), or an array as
    ``.npy`` (no pickles). Returns ``path``."""
    if fmt == "json":
        return write_json(path, value, indent=indent)
    import numpy as np

    with atomic_path(path, suffix=".npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, value, allow_pickle=False)
    return Path(path)


def cached(path: str | os.PathLike | None, compute: Callable[[], Any], *, fmt: CacheFormat = "json",
           refresh: bool = False, valid: Callable[[Any], bool] | None = None, indent: int | None = 2) -> Any:
    """The workbook's content-hashed cache: read the result cached at ``path`` when it is there and readable,
    else ``compute()`` it and write it atomically (:func:`write_cached`), then return it.

    >>> tags = cached(cache_dir / f"{text_hash(file_hash(clip), version)}.json",   # doctest: +SKIP
    ...               lambda: tagger.tag(wav, sr))

    Args:
        path: the cache file, named by a content hash of everything the result depends on; ``None`` computes
            without caching.
        compute: makes the result on a miss (a JSON-able value, or an array for ``fmt="npy"``).
        fmt: ``"json"`` or ``"npy"``.
        refresh: compute and overwrite even when an entry exists.
        valid: check of an entry read back (see :func:`read_cached`).
        indent: JSON indentation of the written entry (``None``: one line).
    """
    if path is not None and not refresh:
        value = read_cached(path, fmt=fmt, valid=valid)
        if value is not None:
            return value
    value = compute()
    if path is not None:
        write_cached(path, value, fmt=fmt, indent=indent)
    return value


def _load_npy(path: Path):
    import numpy as np

    return np.load(path, allow_pickle=False)
