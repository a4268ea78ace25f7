"""The ring's scalar record layout is defined once (``ring.py``); the struct that ``log()``
packs with and the numpy dtypes the flusher builds and the writer decodes with must agree."""

from __future__ import annotations

import re

import numpy as np
import pytest

from kohakuboard import ring
from kohakuboard.client.directory import new_board_id


@pytest.mark.parametrize("width", [1, 4, 37])
def test_struct_and_dtypes_describe_the_same_bytes(width: int) -> None:
    values = [float(i) + 0.5 for i in range(width)]
    body = ring.scalar_struct(width).pack(16, 0, -3, 7, 1.25, *values)
    assert len(body) == ring.scalar_body_size(width) == ring.scalar_dtype(width).itemsize

    (row,) = np.frombuffer(body, dtype=ring.scalar_dtype(width))
    assert (row["sid"], row["step"], row["global_step"], row["wall_time"]) == (16, -3, 7, 1.25)
    assert row["value"].tolist() == values

    record = np.zeros(1, dtype=ring.scalar_dtype(width, with_header=True))
    record["length"], record["pos"] = ring.REC_HEADER.size + len(body), 4096
    record["sid"], record["step"], record["global_step"], record["wall_time"] = 16, -3, 7, 1.25
    record["value"] = values
    raw = record.tobytes()
    assert ring.REC_HEADER.unpack_from(raw) == (ring.REC_HEADER.size + len(body), 0, 4096)
    assert raw[ring.REC_HEADER.size :] == body


def test_staged_names_round_trip() -> None:
    name = ring.staged_name("ab12", 3)
    assert ring.is_staged_name("ab12", name)
    assert not ring.is_staged_name("ab13", name)
    assert not ring.is_staged_name("ab12", "../" + name)


def test_new_board_id_is_a_plain_folder_name() -> None:
    ids = {new_board_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"\d{8}_\d{6}_[0-9a-f]{8}", i) for i in ids)
