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
      11 list of floats: u32 count, count * f64 (a list whose items are all float)

Every length and count is checked against the bytes that remain, nesting is limited to
``MAX_DEPTH`` and a message to ``MAX_MESSAGE_BYTES``. Arrays cost one memcpy (the decoder
copies the message once, and its arrays are read-only views of that copy), so large payloads
cost what their bytes cost; there is no per-element Python work for arrays or float lists.
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

(
    T_NONE,
    T_FALSE,
    T_TRUE,
    T_INT,
    T_BIGINT,
    T_FLOAT,
    T_STR,
    T_BYTES,
    T_LIST,
    T_DICT,
    T_ARRAY,
    T_FLOATS,
) = range(12)
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
_ARRAY_1D = struct.Struct("<BBBQ")
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_CONST = {None: bytes([T_NONE]), False: bytes([T_FALSE]), True: bytes([T_TRUE])}


class WireError(ValueError):
    """A value that cannot be encoded, or bytes that are not a valid message."""


# -- encoding ------------------------------------------------------------------------------
def encode(obj: Any) -> bytes:
    """One message holding ``obj`` (see the module docstring for what is accepted)."""
    parts: list[Any] = [HEADER]
    try:
        _encode(obj, parts, 0)
    except _PathError as exc:
        raise WireError(f"value{exc.path}: {exc.reason}") from None
    data = b"".join(parts)
    if len(data) > MAX_MESSAGE_BYTES:
        raise WireError(f"message of {len(data)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
    return data


class _PathError(Exception):
    """Why a value cannot be encoded; containers prepend their index on the way out."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = ""


_pack_f64 = _TAG_F64.pack
_pack_u32 = _TAG_U32.pack
_pack_i64 = _TAG_I64.pack
_key_len = _U32.pack


def _encode(obj: Any, parts: list[Any], depth: int) -> None:
    t = type(obj)
    if t is float:
        parts.append(_pack_f64(T_FLOAT, obj))
    elif t is str:
        raw = _utf8(obj)
        parts.append(_pack_u32(T_STR, len(raw)) + raw)
    elif t is int:
        if _I64_MIN <= obj <= _I64_MAX:
            parts.append(_pack_i64(T_INT, obj))
        else:
            _encode_bigint(obj, parts)
    elif obj is None or t is bool:
        parts.append(_CONST[obj])
    elif t is dict:
        _encode_dict(obj, parts, depth)
    elif t is list or t is tuple:
        _encode_list(obj, parts, depth)
    elif isinstance(obj, np.ndarray):
        _encode_array(obj, parts)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        blob = obj if type(obj) is bytes else bytes(obj)
        parts.append(_TAG_U64.pack(T_BYTES, len(blob)))
        parts.append(blob)
    elif isinstance(obj, (bool, np.bool_)):
        parts.append(_CONST[bool(obj)])
    elif isinstance(obj, (int, np.integer)):
        _encode(int(obj), parts, depth)
    elif isinstance(obj, (float, np.floating)):
        parts.append(_pack_f64(T_FLOAT, float(obj)))
    elif isinstance(obj, str):
        _encode(str(obj), parts, depth)
    elif isinstance(obj, dict):
        _encode(dict(obj), parts, depth)
    elif isinstance(obj, (list, tuple)):
        _encode(list(obj), parts, depth)
    else:
        raise _PathError(
            f"cannot encode {type(obj).__name__}; accepted: None, bool, int, float, str, bytes, "
            "list, tuple, dict with str keys, numeric/bool numpy arrays"
        )


# Containers handle their plain leaves in line (a function call per cell would cost more
# than the cell); anything else recurses. Errors get their path added on the way out.
def _encode_list(obj: list[Any] | tuple[Any, ...], parts: list[Any], depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise _PathError(f"nested deeper than {MAX_DEPTH} levels")
    n = len(obj)
    if n and type(obj[0]) is float and all(type(v) is float for v in obj):
        parts.append(_pack_u32(T_FLOATS, n) + struct.pack(f"<{n}d", *obj))
        return
    parts.append(_pack_u32(T_LIST, n))
    append = parts.append
    i = 0
    try:
        for i, v in enumerate(obj):  # noqa: B007 - i names the failing item
            t = type(v)
            if t is float:
                append(_pack_f64(T_FLOAT, v))
            elif t is str:
                raw = v.encode("utf-8")
                append(_pack_u32(T_STR, len(raw)) + raw)
            elif t is int and _I64_MIN <= v <= _I64_MAX:
                append(_pack_i64(T_INT, v))
            elif v is None or t is bool:
                append(_CONST[v])
            else:
                _encode(v, parts, depth + 1)
    except _PathError as exc:
        exc.path = f"[{i}]{exc.path}"
        raise
    except UnicodeEncodeError as exc:
        error = _PathError(f"{obj[i]!r} is not valid Unicode text ({exc.reason})")
        error.path = f"[{i}]"
        raise error from None


def _encode_dict(obj: dict[Any, Any], parts: list[Any], depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise _PathError(f"nested deeper than {MAX_DEPTH} levels")
    parts.append(_pack_u32(T_DICT, len(obj)))
    append = parts.append
    cache = _KEY_CACHE
    key: Any = None
    for key, v in obj.items():
        try:
            head = cache.get(key) if type(key) is str else None
            if head is None:
                head = _key_head(key)
            t = type(v)
            if t is float:
                append(head + _pack_f64(T_FLOAT, v))
            elif t is int and _I64_MIN <= v <= _I64_MAX:
                append(head + _pack_i64(T_INT, v))
            else:
                append(head)
                _encode(v, parts, depth + 1)
        except _PathError as exc:
            exc.path = f"[{key!r}]{exc.path}"
            raise


# Encoded dict keys (length + UTF-8) of the payloads' fixed field names and recent keys.
_KEY_CACHE: dict[str, bytes] = {}
_KEY_CACHE_MAX = 4096


def _key_head(key: Any) -> bytes:
    if not isinstance(key, str):
        raise _PathError(f"dict keys must be str, got {type(key).__name__}")
    raw = _utf8(str(key))
    head = _key_len(len(raw)) + raw
    if type(key) is str and len(_KEY_CACHE) < _KEY_CACHE_MAX:
        _KEY_CACHE[key] = head
    return head


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _PathError(f"{text!r} is not valid Unicode text ({exc.reason})") from None


def _encode_bigint(value: int, parts: list[Any]) -> None:
    n = (value.bit_length() + 8) // 8  # room for the sign bit
    if n > MAX_BIGINT_BYTES:
        raise _PathError(f"int of {value.bit_length()} bits is too large to encode")
    parts.append(_pack_u32(T_BIGINT, n))
    parts.append(value.to_bytes(n, "little", signed=True))


def _encode_array(arr: np.ndarray, parts: list[Any]) -> None:
    code = _CODE.get(arr.dtype)
    if code is None:
        dt = arr.dtype
        if dt.kind not in "biuf" or dt.fields is not None:
            raise _PathError(f"numpy arrays of dtype {dt} cannot be encoded")
        code = _CODE.get(dt.newbyteorder("<"))
        if code is None:
            raise _PathError(f"numpy arrays of dtype {dt} cannot be encoded")
        arr = arr.astype(DTYPES[code])
    ndim = arr.ndim
    if ndim == 1:
        head = _ARRAY_1D.pack(T_ARRAY, code, 1, arr.shape[0])
    elif ndim <= MAX_NDIM:
        head = _ARRAY_HEAD.pack(T_ARRAY, code, ndim) + struct.pack(f"<{ndim}Q", *arr.shape)
    else:
        raise _PathError(f"arrays of more than {MAX_NDIM} dimensions cannot be encoded")
    if arr.nbytes <= 1 << 16:  # small: one call makes the C-order bytes
        parts.append(head + arr.tobytes())
    else:  # large: no copy here; join copies it once
        parts.append(head)
        parts.append(np.ascontiguousarray(arr).reshape(-1).view(np.uint8).data)


# -- decoding ------------------------------------------------------------------------------
def decode(data: bytes | bytearray | memoryview) -> Any:
    """The value of one message; :class:`WireError` for anything else.

    A buffer that may change later (a memoryview, a bytearray) is copied once first, so
    the result never depends on it; arrays in the result are read-only views of that copy.
    """
    if type(data) is not bytes:
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if len(view) > MAX_MESSAGE_BYTES:
            raise WireError(
                f"message of {len(view)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}"
            )
        data = view.tobytes()
    n = len(data)
    if n > MAX_MESSAGE_BYTES:
        raise WireError(f"message of {n} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")
    if data[:3] != MAGIC:
        raise WireError("not a kohakuboard wire message (bad magic)")
    if n < 4 or data[3] != VERSION:
        version = data[3] if n >= 4 else None
        raise WireError(f"wire message version {version} is not supported (this reads {VERSION})")
    try:
        obj, end = _decode(data, 4, n, 0)
    except (struct.error, IndexError) as exc:  # a read past the end: truncated
        raise WireError(f"truncated message ({exc})") from None
    except UnicodeDecodeError as exc:
        raise WireError(f"text at offset {exc.start} is not valid UTF-8 ({exc.reason})") from None
    if end != n:
        raise WireError(f"{n - end} trailing bytes after the value")
    return obj


_unpack_f64 = _F64.unpack_from
_unpack_i64 = _I64.unpack_from
_unpack_u32 = _U32.unpack_from


def _decode(data: bytes, pos: int, end: int, depth: int) -> tuple[Any, int]:
    # struct reads past the end raise struct.error and indexing IndexError (decode turns
    # both into WireError); slices are checked explicitly, since they never fail.
    tag = data[pos]
    pos += 1
    if tag == T_FLOAT:
        return _unpack_f64(data, pos)[0], pos + 8
    if tag == T_INT:
        return _unpack_i64(data, pos)[0], pos + 8
    if tag == T_STR:
        n = _unpack_u32(data, pos)[0]
        pos += 4
        if pos + n > end:
            raise WireError(f"truncated: text of {n} bytes at offset {pos}")
        return data[pos : pos + n].decode("utf-8"), pos + n
    if tag == T_DICT or tag == T_LIST:
        if depth >= MAX_DEPTH:
            raise WireError(f"nested deeper than {MAX_DEPTH} levels at offset {pos - 1}")
        count = _unpack_u32(data, pos)[0]
        pos += 4
        # every item takes at least one byte (five for a dict entry): no huge preallocation
        if count > (end - pos) // (5 if tag == T_DICT else 1):
            raise WireError(f"truncated: {count} items announced at offset {pos - 5}")
        if tag == T_LIST:
            return _decode_list(data, pos, end, depth + 1, count)
        return _decode_dict(data, pos, end, depth + 1, count)
    if tag == T_NONE:
        return None, pos
    if tag == T_FALSE:
        return False, pos
    if tag == T_TRUE:
        return True, pos
    if tag == T_FLOATS:
        n = _unpack_u32(data, pos)[0]
        pos += 4
        if n > (end - pos) // 8:
            raise WireError(f"truncated: {n} floats announced at offset {pos - 5}")
        return list(struct.unpack_from(f"<{n}d", data, pos)), pos + 8 * n
    if tag == T_ARRAY:
        return _decode_array(data, pos, end)
    if tag == T_BYTES:
        n = _U64.unpack_from(data, pos)[0]
        pos += 8
        if n > end - pos:
            raise WireError(f"truncated: {n} bytes announced at offset {pos - 9}")
        return data[pos : pos + n], pos + n
    if tag == T_BIGINT:
        n = _unpack_u32(data, pos)[0]
        pos += 4
        if n > MAX_BIGINT_BYTES or n > end - pos:
            raise WireError(f"int of {n} bytes at offset {pos - 5} is too large or truncated")
        return int.from_bytes(data[pos : pos + n], "little", signed=True), pos + n
    raise WireError(f"unknown tag {tag} at offset {pos - 1}")


def _decode_list(data: bytes, pos: int, end: int, depth: int, count: int) -> tuple[Any, int]:
    items: list[Any] = [None] * count
    for i in range(count):
        tag = data[pos]
        if tag == T_FLOAT:
            items[i] = _unpack_f64(data, pos + 1)[0]
            pos += 9
        elif tag == T_INT:
            items[i] = _unpack_i64(data, pos + 1)[0]
            pos += 9
        elif tag == T_STR:
            n = _unpack_u32(data, pos + 1)[0]
            pos += 5
            if pos + n > end:
                raise WireError(f"truncated: text of {n} bytes at offset {pos}")
            items[i] = data[pos : pos + n].decode("utf-8")
            pos += n
        elif tag == T_NONE:
            pos += 1
        else:
            items[i], pos = _decode(data, pos, end, depth)
    return items, pos


def _decode_dict(data: bytes, pos: int, end: int, depth: int, count: int) -> tuple[Any, int]:
    out: dict[str, Any] = {}
    for _ in range(count):
        n = _unpack_u32(data, pos)[0]
        pos += 4
        if pos + n > end:
            raise WireError(f"truncated: key of {n} bytes at offset {pos}")
        key = data[pos : pos + n].decode("utf-8")
        pos += n
        tag = data[pos]
        if tag == T_FLOAT:
            out[key] = _unpack_f64(data, pos + 1)[0]
            pos += 9
        elif tag == T_INT:
            out[key] = _unpack_i64(data, pos + 1)[0]
            pos += 9
        else:
            out[key], pos = _decode(data, pos, end, depth)
    return out, pos


def _decode_array(data: bytes, pos: int, end: int) -> tuple[np.ndarray, int]:
    code, ndim = data[pos], data[pos + 1]
    pos += 2
    if code >= len(DTYPES):
        raise WireError(f"unknown array dtype code {code} at offset {pos - 2}")
    if ndim > MAX_NDIM:
        raise WireError(f"array of {ndim} dimensions at offset {pos - 2}")
    shape = struct.unpack_from(f"<{ndim}Q", data, pos)
    pos += 8 * ndim
    dtype = DTYPES[code]
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if nbytes > end - pos:
        raise WireError(f"truncated: array of {nbytes} bytes at offset {pos}")
    try:
        arr = np.frombuffer(data, dtype=dtype, count=count, offset=pos)
        if ndim != 1:
            arr = arr.reshape(shape)
    except (ValueError, OverflowError) as exc:  # e.g. a dimension numpy cannot index
        raise WireError(f"array of shape {shape} at offset {pos}: {exc}") from None
    return arr, pos + nbytes
