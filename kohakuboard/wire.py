"""A small plain-data binary codec for everything the training process hands to the writer.

Ring records that are not fixed-layout scalars (rich values, key schemas, control records)
and the files in ``staging/`` are encoded with it. Decoding builds only None, bool, int,
float, str, bytes, list, dict (str keys) and numpy arrays of numeric or bool dtypes, so a
crafted file can at worst be rejected: nothing in it is ever called, imported or evaluated.

Layout of a message (little endian)::

    b"KBW" u8 version       then exactly one value
    value := u8 tag, then
      0 None | 1 False | 2 True
      3 int: i64                  4 big int: u32 n, n bytes (two's complement)
      5 float: f64                6 str: u32 n, n bytes of UTF-8
      7 bytes: u64 n, n bytes     8 list: u32 count, count values
      9 dict: u32 count, count times (u32 n, UTF-8 key, value)
      10 ndarray: u8 dtype code (see DTYPES), u8 ndim, u64 * ndim shape, raw C-order bytes

Every length and count is checked against the bytes that remain, nesting is limited to
``MAX_DEPTH`` and a message to ``MAX_MESSAGE_BYTES``. Arrays are copied with one memcpy each,
so large payloads cost what their bytes cost (no per-element Python work).
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

MAGIC = b"KBW"
VERSION = 1
HEADER = MAGIC + bytes([VERSION])
MAX_DEPTH = 32
MAX_MESSAGE_BYTES = 1 << 31  # 2 GiB: a larger media item is refused when logged
MAX_NDIM = 32
MAX_BIGINT_BYTES = 4096

T_NONE, T_FALSE, T_TRUE, T_INT, T_BIGINT, T_FLOAT, T_STR, T_BYTES, T_LIST, T_DICT, T_ARRAY = range(
    11
)
# Accepted array dtypes, by code (always little endian on the wire).
DTYPES: tuple[np.dtype, ...] = tuple(
    np.dtype(s)
    for s in ("|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8")
)
_CODE = {dt: i for i, dt in enumerate(DTYPES)}

_U8 = struct.Struct("<B")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_TAG_U32 = struct.Struct("<BI")
_TAG_I64 = struct.Struct("<Bq")
_TAG_F64 = struct.Struct("<Bd")
_TAG_U64 = struct.Struct("<BQ")
_ARRAY_HEAD = struct.Struct("<BBB")
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_CONST = {None: bytes([T_NONE]), False: bytes([T_FALSE]), True: bytes([T_TRUE])}


class WireError(ValueError):
    """A value that cannot be encoded, or bytes that are not a valid message."""


# -- encoding ------------------------------------------------------------------------------
def encode(obj: Any) -> bytes:
    """One message holding ``obj`` (see the module docstring for what is accepted)."""
    parts: list[Any] = [HEADER]
    _encode(obj, parts, 0, "value")
    data = b"".join(parts)
    if len(data) > MAX_MESSAGE_BYTES:
        raise WireError(f"message of {len(data)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
    return data


def _encode(obj: Any, parts: list[Any], depth: int, where: str) -> None:
    if depth > MAX_DEPTH:
        raise WireError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    t = type(obj)
    if t is float:
        parts.append(_TAG_F64.pack(T_FLOAT, obj))
    elif t is str:
        raw = _utf8(obj, where)
        parts.append(_TAG_U32.pack(T_STR, len(raw)))
        parts.append(raw)
    elif t is int:
        _encode_int(obj, parts)
    elif obj is None or t is bool:
        parts.append(_CONST[obj])
    elif t is dict:
        parts.append(_TAG_U32.pack(T_DICT, len(obj)))
        for key, value in obj.items():
            if type(key) is not str:
                if not isinstance(key, str):
                    raise WireError(f"{where}: dict keys must be str, got {type(key).__name__}")
                key = str(key)
            raw = _utf8(key, where)
            parts.append(_U32.pack(len(raw)))
            parts.append(raw)
            _encode(value, parts, depth + 1, f"{where}[{key!r}]")
    elif t is list or t is tuple:
        parts.append(_TAG_U32.pack(T_LIST, len(obj)))
        for i, value in enumerate(obj):
            _encode(value, parts, depth + 1, f"{where}[{i}]")
    elif isinstance(obj, np.ndarray):
        _encode_array(obj, parts, where)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        raw = bytes(obj) if isinstance(obj, memoryview) else obj
        parts.append(_TAG_U64.pack(T_BYTES, len(raw)))
        parts.append(raw)
    elif isinstance(obj, (bool, np.bool_)):
        parts.append(_CONST[bool(obj)])
    elif isinstance(obj, (int, np.integer)):
        _encode_int(int(obj), parts)
    elif isinstance(obj, (float, np.floating)):
        parts.append(_TAG_F64.pack(T_FLOAT, float(obj)))
    elif isinstance(obj, str):
        _encode(str(obj), parts, depth, where)
    elif isinstance(obj, dict):
        _encode(dict(obj), parts, depth, where)
    elif isinstance(obj, (list, tuple)):
        _encode(list(obj), parts, depth, where)
    else:
        raise WireError(
            f"{where}: cannot encode {type(obj).__name__}; accepted: None, bool, int, float, "
            "str, bytes, list, tuple, dict with str keys, numeric/bool numpy arrays"
        )


def _utf8(text: str, where: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise WireError(f"{where}: {text!r} is not valid Unicode text ({exc.reason})") from None


def _encode_int(value: int, parts: list[Any]) -> None:
    if _I64_MIN <= value <= _I64_MAX:
        parts.append(_TAG_I64.pack(T_INT, value))
        return
    n = (value.bit_length() + 8) // 8  # room for the sign bit
    if n > MAX_BIGINT_BYTES:
        raise WireError(f"int of {value.bit_length()} bits is too large to encode")
    parts.append(_TAG_U32.pack(T_BIGINT, n))
    parts.append(value.to_bytes(n, "little", signed=True))


def _encode_array(arr: np.ndarray, parts: list[Any], where: str) -> None:
    dt = arr.dtype
    code = _CODE.get(dt)
    if code is None:
        if dt.kind not in "biuf" or dt.fields is not None:
            raise WireError(f"{where}: numpy arrays of dtype {dt} cannot be encoded")
        code = _CODE.get(dt.newbyteorder("<"))
        if code is None:
            raise WireError(f"{where}: numpy arrays of dtype {dt} cannot be encoded")
        arr = arr.astype(DTYPES[code])
    if arr.ndim > MAX_NDIM:
        raise WireError(f"{where}: arrays of more than {MAX_NDIM} dimensions cannot be encoded")
    flat = np.ascontiguousarray(arr).reshape(-1)
    parts.append(_ARRAY_HEAD.pack(T_ARRAY, code, arr.ndim))
    if arr.ndim:
        parts.append(struct.pack(f"<{arr.ndim}Q", *arr.shape))
    parts.append(flat.view(np.uint8).data)


# -- decoding ------------------------------------------------------------------------------
def decode(data: bytes | bytearray | memoryview) -> Any:
    """The value of one message; :class:`WireError` for anything else. Arrays are copies
    (the buffer may be reused once this returns)."""
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    n = len(view)
    if n > MAX_MESSAGE_BYTES:
        raise WireError(f"message of {n} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
    if bytes(view[:3]) != MAGIC:
        raise WireError("not a kohakuboard wire message (bad magic)")
    if n < 4 or view[3] != VERSION:
        version = view[3] if n >= 4 else None
        raise WireError(f"wire message version {version} is not supported (this reads {VERSION})")
    obj, end = _decode(view, 4, n, 0)
    if end != n:
        raise WireError(f"{n - end} trailing bytes after the value")
    return obj


def _need(pos: int, size: int, end: int) -> None:
    if size > end - pos:
        raise WireError(f"truncated: {size} bytes needed at offset {pos}, {end - pos} left")


def _decode(view: memoryview, pos: int, end: int, depth: int) -> tuple[Any, int]:
    if pos >= end:
        raise WireError(f"truncated: a value expected at offset {pos}")
    tag = view[pos]
    pos += 1
    if tag == T_FLOAT:
        _need(pos, 8, end)
        return _F64.unpack_from(view, pos)[0], pos + 8
    if tag == T_INT:
        _need(pos, 8, end)
        return _I64.unpack_from(view, pos)[0], pos + 8
    if tag == T_STR:
        _need(pos, 4, end)
        n = _U32.unpack_from(view, pos)[0]
        pos += 4
        _need(pos, n, end)
        return _text(view, pos, n), pos + n
    if tag == T_NONE:
        return None, pos
    if tag == T_FALSE:
        return False, pos
    if tag == T_TRUE:
        return True, pos
    if tag == T_DICT or tag == T_LIST:
        if depth >= MAX_DEPTH:
            raise WireError(f"nested deeper than {MAX_DEPTH} levels at offset {pos - 1}")
        _need(pos, 4, end)
        count = _U32.unpack_from(view, pos)[0]
        pos += 4
        # every item takes at least one byte (five for a dict entry): no huge preallocation
        if count > (end - pos) // (5 if tag == T_DICT else 1):
            raise WireError(f"truncated: {count} items announced at offset {pos - 5}")
        if tag == T_LIST:
            items = []
            for _ in range(count):
                value, pos = _decode(view, pos, end, depth + 1)
                items.append(value)
            return items, pos
        out: dict[str, Any] = {}
        for _ in range(count):
            _need(pos, 4, end)
            n = _U32.unpack_from(view, pos)[0]
            pos += 4
            _need(pos, n, end)
            key = _text(view, pos, n)
            value, pos = _decode(view, pos + n, end, depth + 1)
            out[key] = value
        return out, pos
    if tag == T_ARRAY:
        return _decode_array(view, pos, end)
    if tag == T_BYTES:
        _need(pos, 8, end)
        n = _U64.unpack_from(view, pos)[0]
        pos += 8
        _need(pos, n, end)
        return bytes(view[pos : pos + n]), pos + n
    if tag == T_BIGINT:
        _need(pos, 4, end)
        n = _U32.unpack_from(view, pos)[0]
        pos += 4
        if n > MAX_BIGINT_BYTES:
            raise WireError(f"int of {n} bytes at offset {pos - 5} is too large")
        _need(pos, n, end)
        return int.from_bytes(view[pos : pos + n], "little", signed=True), pos + n
    raise WireError(f"unknown tag {tag} at offset {pos - 1}")


def _text(view: memoryview, pos: int, n: int) -> str:
    try:
        return str(view[pos : pos + n], "utf-8")
    except UnicodeDecodeError as exc:
        raise WireError(f"text at offset {pos} is not valid UTF-8 ({exc.reason})") from None


def _decode_array(view: memoryview, pos: int, end: int) -> tuple[np.ndarray, int]:
    _need(pos, 2, end)
    code, ndim = view[pos], view[pos + 1]
    pos += 2
    if code >= len(DTYPES):
        raise WireError(f"unknown array dtype code {code} at offset {pos - 2}")
    if ndim > MAX_NDIM:
        raise WireError(f"array of {ndim} dimensions at offset {pos - 2}")
    _need(pos, 8 * ndim, end)
    shape = struct.unpack_from(f"<{ndim}Q", view, pos)
    pos += 8 * ndim
    dtype = DTYPES[code]
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    _need(pos, nbytes, end)
    try:
        arr = np.frombuffer(view, dtype=dtype, count=count, offset=pos).reshape(shape).copy()
    except (ValueError, OverflowError) as exc:  # e.g. a dimension numpy cannot index
        raise WireError(f"array of shape {shape} at offset {pos}: {exc}") from None
    return arr, pos + nbytes
