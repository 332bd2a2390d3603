"""Read TensorFlow checkpoints (the "tensor bundle" format) with numpy only, no TensorFlow.

A bundle is a prefix ``P`` with two files:

* ``P.index`` — a LevelDB-format sorted string table: variable name → ``BundleEntryProto`` (dtype, shape, shard,
  byte offset, byte size, crc32c). The empty key holds a ``BundleHeaderProto`` (shard count, endianness).
* ``P.data-00000-of-0000N`` — the raw tensor bytes, concatenated.

Only what TF 1.x / 2.x checkpoints of plain dense variables need is implemented: uncompressed blocks, the numeric
dtypes, one or more shards, no sliced (partitioned) variables. Protobuf messages are decoded with a small varint
parser, so neither TensorFlow nor ``protobuf`` is required.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["BundleEntry", "list_variables", "read_bundle", "read_index"]

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_LEN = 48

#: TensorFlow ``DataType`` enum values → numpy dtypes (little-endian).
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    4: np.dtype("u1"),  # DT_UINT8
    5: np.dtype("<i2"),  # DT_INT16
    6: np.dtype("i1"),  # DT_INT8
    9: np.dtype("<i8"),  # DT_INT64
    10: np.dtype("?"),  # DT_BOOL
    17: np.dtype("<u2"),  # DT_UINT16
    19: np.dtype("<f2"),  # DT_HALF
    22: np.dtype("<u4"),  # DT_UINT32
    23: np.dtype("<u8"),  # DT_UINT64
}


class BundleEntry:
    """Where one variable lives: ``dtype`` (numpy), ``shape`` (tuple), ``shard``, ``offset`` and ``size`` in bytes."""

    __slots__ = ("dtype", "offset", "shape", "shard", "size", "sliced")

    def __init__(self, dtype: np.dtype | None, shape: tuple[int, ...], shard: int, offset: int, size: int,
                 sliced: bool):
        self.dtype, self.shape, self.shard, self.offset, self.size, self.sliced = (
            dtype, shape, shard, offset, size, sliced)

    def __repr__(self) -> str:
        return f"BundleEntry(dtype={self.dtype}, shape={self.shape}, shard={self.shard}, size={self.size})"


# ---------------------------------------------------------------------------------------------------------- protobuf
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes):
    """Yield ``(field_number, wire_type, value)`` of a serialized protobuf message (value: int or bytes)."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for field, _, value in _fields(buf):
        if field == 2:  # TensorShapeProto.dim
            size = 0
            for f, _, v in _fields(value):
                if f == 1:
                    size = _signed64(v)
            dims.append(size)
    return tuple(dims)


def _parse_entry(buf: bytes) -> BundleEntry:
    dtype_id, shape, shard, offset, size, sliced = 0, (), 0, 0, 0, False
    for field, _, value in _fields(buf):
        if field == 1:
            dtype_id = value
        elif field == 2:
            shape = _parse_shape(value)
        elif field == 3:
            shard = value
        elif field == 4:
            offset = _signed64(value)
        elif field == 5:
            size = _signed64(value)
        elif field == 7:
            sliced = True
    return BundleEntry(_DTYPES.get(dtype_id), shape, shard, offset, size, sliced)


# ------------------------------------------------------------------------------------------------ LevelDB table
def _block(data: bytes, offset: int, size: int, where: Path) -> list[tuple[bytes, bytes]]:
    """Decode one table block into ``[(key, value), ...]`` (keys are prefix-compressed against the previous key)."""
    if offset + size + 5 > len(data):
        raise InputError(f"{where}: truncated checkpoint index; reinstall the package that ships it")
    if data[offset + size] != 0:
        raise InputError(f"{where}: compressed checkpoint index blocks are not supported")
    block = data[offset:offset + size]
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts
    pos, key, out = 0, b"", []
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        out.append((key, block[pos:pos + vlen]))
        pos += vlen
    return out


def _handle(buf: bytes, pos: int = 0) -> tuple[int, int, int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return offset, size, pos


def _index_path(prefix: str | os.PathLike) -> Path:
    p = Path(prefix)
    if p.suffix == ".index" or p.name == ".index":
        return p
    if p.is_dir():  # musicnn-style folder whose bundle prefix is "<dir>/"
        return p / ".index"
    return p.with_name(p.name + ".index")


def read_index(prefix: str | os.PathLike) -> tuple[dict[str, BundleEntry], int]:
    """Parse ``<prefix>.index``.

    Args:
        prefix: bundle prefix (``.../model.ckpt``), the ``.index`` file itself, or a folder holding ``.index``.

    Returns:
        ``(entries, num_shards)``: variable name → :class:`BundleEntry`, and the shard count from the header.

    Raises:
        InputError: the index is missing or not a tensor-bundle table.
    """
    path = _index_path(prefix)
    if not path.is_file():
        raise InputError(f"{path}: no checkpoint index file")
    data = path.read_bytes()
    if len(data) < _FOOTER_LEN or struct.unpack_from("<Q", data, len(data) - 8)[0] != _TABLE_MAGIC:
        raise InputError(f"{path}: not a TensorFlow checkpoint index (bad table magic)")
    footer = data[-_FOOTER_LEN:]
    _, _, pos = _handle(footer)  # metaindex handle (unused: no filters)
    idx_off, idx_size, _ = _handle(footer, pos)
    entries: dict[str, BundleEntry] = {}
    num_shards = 1
    for _, handle in _block(data, idx_off, idx_size, path):
        off, size, _ = _handle(handle)
        for key, value in _block(data, off, size, path):
            if key == b"":  # BundleHeaderProto
                for field, _, v in _fields(value):
                    if field == 1:
                        num_shards = v
                    elif field == 2 and v != 0:
                        raise InputError(f"{path}: big-endian checkpoints are not supported")
                continue
            entries[key.decode("utf-8")] = _parse_entry(value)
    return entries, num_shards


def list_variables(prefix: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Variable name → shape, like ``tf.train.list_variables`` (sorted by name)."""
    entries, _ = read_index(prefix)
    return {k: e.shape for k, e in sorted(entries.items())}


def read_bundle(prefix: str | os.PathLike, *, names=None, skip_optimizer_slots: bool = True) -> dict[str, np.ndarray]:
    """Load variables of a TensorFlow checkpoint as numpy arrays.

    Args:
        prefix: bundle prefix, ``.index`` file or folder holding ``.index`` (see :func:`read_index`).
        names: only these variable names (default: all).
        skip_optimizer_slots: leave out ``.../Adam``, ``.../Adam_1``, ``.../Momentum`` slots and ``beta*_power``.

    Returns:
        name → array with the stored dtype and shape (TF layout, e.g. conv kernels ``[kh, kw, in, out]``).

    Raises:
        InputError: a data shard is missing or too short, or a requested name is absent.
    """
    index_path = _index_path(prefix)
    entries, num_shards = read_index(index_path)
    base = str(index_path)[: -len(".index")]
    wanted = list(entries) if names is None else list(names)
    missing = [n for n in wanted if n not in entries]
    if missing:
        raise InputError(f"{index_path}: variables not in checkpoint: {', '.join(missing[:5])}")
    if skip_optimizer_slots and names is None:
        wanted = [n for n in wanted if not _is_slot(n)]
    shards: dict[int, np.memmap] = {}
    out: dict[str, np.ndarray] = {}
    for name in wanted:
        e = entries[name]
        if e.sliced or e.dtype is None:
            continue
        if e.shard not in shards:
            shard_path = Path(f"{base}.data-{e.shard:05d}-of-{num_shards:05d}")
            if not shard_path.is_file():
                raise InputError(f"{shard_path}: checkpoint data shard missing; reinstall the package that ships it")
            shards[e.shard] = np.memmap(shard_path, dtype=np.uint8, mode="r")
        raw = shards[e.shard]
        if e.offset + e.size > raw.shape[0]:
            raise InputError(f"{index_path}: variable {name} lies past the end of its data shard (truncated file?)")
        count = int(np.prod(e.shape, dtype=np.int64)) if e.shape else 1
        if count * e.dtype.itemsize != e.size:
            raise InputError(f"{index_path}: variable {name} has {e.size} bytes, expected {count * e.dtype.itemsize}")
        arr = np.frombuffer(raw[e.offset:e.offset + e.size].tobytes(), dtype=e.dtype).reshape(e.shape)
        out[name] = arr.astype(e.dtype.newbyteorder("="), copy=False)
    return out


def _is_slot(name: str) -> bool:
    last = name.rsplit("/", 1)[-1]
    return last in {"Adam", "Adam_1", "Momentum", "RMSProp", "RMSProp_1"} or last.startswith(("beta1_power",
                                                                                                "beta2_power"))
