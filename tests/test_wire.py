"""``kohakuboard.wire``: plain data round-trips exactly; any other bytes raise WireError."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kohakuboard import wire
from kohakuboard.wire import WireError

DTYPES = ["?", "i1", "u1", "<i2", ">u2", "<i4", "<u4", ">i8", "<u8", "<f2", ">f4", "<f8"]

arrays = st.builds(
    lambda dt, shape, seed: (
        np.random.default_rng(seed)
        .integers(0, 255, size=int(np.prod(shape)) * np.dtype(dt).itemsize, dtype=np.uint8)
        .view(np.dtype(dt))
        .reshape(shape)
    ),
    st.sampled_from(DTYPES),
    st.lists(st.integers(0, 4), max_size=4).map(tuple),
    st.integers(0, 2**32 - 1),
)
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.binary()
    | arrays
)
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


def same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.shape == b.shape
            and a.dtype.newbyteorder("=") == b.dtype.newbyteorder("=")
            and a.tobytes() == b.astype(a.dtype).tobytes()
        )
    if isinstance(a, float):
        return type(b) is float and struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, (list, tuple)):
        return type(b) is list and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return type(b) is dict and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None)
@given(values)
def test_plain_data_round_trips_exactly(value: object) -> None:
    assert same(value, wire.decode(wire.encode(value)))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_wire_error(data: bytes) -> None:
    for blob in (data, wire.HEADER + data):
        try:
            wire.decode(blob)
        except WireError:
            pass


@settings(max_examples=300, deadline=None)
@given(values, st.data())
def test_damaged_messages_decode_or_raise_wire_error(value: object, data: st.DataObject) -> None:
    blob = bytearray(wire.encode(value))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(blob) - 1))
        blob[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    for damaged in (bytes(blob), bytes(blob[:cut])):
        try:
            wire.decode(damaged)
        except WireError:
            pass


def test_numpy_scalars_and_tuples_become_plain_values() -> None:
    out = wire.decode(
        wire.encode({"a": np.float32(1.5), "b": np.int64(-3), "c": np.bool_(True), "t": (1, 2)})
    )
    assert out == {"a": 1.5, "b": -3, "c": True, "t": [1, 2]}
    assert [type(v) for v in out.values()] == [float, int, bool, list]


def test_arrays_do_not_depend_on_the_buffer_they_were_read_from() -> None:
    source = np.arange(12, dtype=np.float32).reshape(3, 4).T  # not C-contiguous
    buffer = bytearray(wire.encode(source))
    out = wire.decode(memoryview(buffer))
    buffer[-48:] = bytes(48)  # the ring reuses its bytes once a record is read
    assert np.array_equal(out, source) and out.shape == (4, 3)
    assert not out.flags.writeable  # a view of the decoder's own copy of the message


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (object(), r"cannot encode object; accepted: None, bool, int"),
        ({1: 2}, r"dict keys must be str, got int"),
        ({"k": ["\udcff"]}, r"value\['k'\]\[0\]: '\\udcff' is not valid Unicode"),
        (np.array(["x"]), r"dtype <U1 cannot be encoded"),
        (np.zeros(2, dtype=complex), r"dtype complex128 cannot be encoded"),
        (np.zeros(2, dtype=object), r"dtype object cannot be encoded"),
        ("big int", r"too large to encode"),
    ],
)
def test_what_cannot_be_encoded_is_named(value: object, match: str) -> None:
    if isinstance(value, str) and value == "big int":
        value = 1 << 40000
    with pytest.raises(WireError, match=match):
        wire.encode(value)


def test_nesting_is_limited() -> None:
    deep: list[object] = []
    for _ in range(wire.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(WireError, match="nested deeper than"):
        wire.encode(deep)
    blob = wire.HEADER + bytes([wire.T_LIST, 1, 0, 0, 0]) * (wire.MAX_DEPTH + 2) + bytes([0])
    with pytest.raises(WireError, match="nested deeper than"):
        wire.decode(blob)


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (b"\x80\x05\x95garbage.", "bad magic"),
        (wire.MAGIC + b"\x09\x00", "version 9 is not supported"),
        (wire.HEADER + bytes([wire.T_LIST]) + b"\xff\xff\xff\xff", "items announced"),
        (wire.HEADER + bytes([wire.T_STR, 2, 0, 0, 0]) + b"\xff\xfe", "not valid UTF-8"),
        (wire.HEADER + bytes([wire.T_ARRAY, 99, 0]), "unknown array dtype code 99"),
        (wire.HEADER + bytes([wire.T_ARRAY, 11, 1]) + b"\xff" * 8, "truncated"),
        (wire.HEADER + bytes([77]), "unknown tag 77"),
        (wire.encode(1.0) + b"\x00", "trailing bytes"),
    ],
)
def test_bad_messages_are_rejected_with_a_reason(blob: bytes, match: str) -> None:
    with pytest.raises(WireError, match=match):
        wire.decode(blob)


def test_nan_payloads_and_signed_zero_are_kept() -> None:
    nan = struct.unpack("<d", struct.pack("<Q", 0x7FF8_0000_DEAD_BEEF))[0]
    out = wire.decode(wire.encode([nan, -0.0, math.inf]))
    assert struct.pack("<d", out[0]) == struct.pack("<d", nan)
    assert math.copysign(1.0, out[1]) == -1.0 and out[2] == math.inf
