"""The ledger's invariant, as a property: whatever the order, repeats and retries of segment
uploads, the server ends up with every row of the stream exactly once, in order."""

from __future__ import annotations

import itertools

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kit import parquet_bytes, sha

from kohakuboard.storage.columnar import SCHEMAS

_ids = itertools.count()


def _rows(n: int) -> pa.Table:
    return pa.table(
        {
            "metric": pa.array(["m"] * n).dictionary_encode(),
            "step": pa.array(range(n), pa.int64()),
            "global_step": pa.array(range(n), pa.int64()),
            "wall_time": pa.array([1.0] * n, pa.float64()),
            "value": pa.array([float(i) * 0.5 for i in range(n)], pa.float64()),
        }
    ).cast(SCHEMAS["scalars"])


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    cuts=st.lists(st.integers(1, 39), max_size=5, unique=True),
    order=st.lists(st.integers(0, 20), min_size=1, max_size=25),
)
def test_any_upload_order_gives_every_row_once(
    client, team, cuts: list[int], order: list[int]
) -> None:
    h = team.headers("editor")
    uid = f"prop-{next(_ids)}"
    r = client.post(
        "/api/sync/projects/vision/boards", json={"id": uid, "created_at": 1.0}, headers=h
    )
    assert r.status_code == 200
    table = _rows(40)
    bounds = [0, *sorted(cuts), 40]
    segments = [(a, table.slice(a, b - a)) for a, b in itertools.pairwise(bounds)]
    # a client that sends segments in a scrambled order, some again, then in order (the retry)
    attempts = [segments[i % len(segments)] for i in order] + segments
    for start, part in attempts:
        body = parquet_bytes(part)
        r = client.put(
            f"/api/sync/boards/{uid}/segments/scalars/{start}",
            params={"rows": part.num_rows, "sha256": sha(body)},
            content=body,
            headers=h,
        )
        assert r.status_code in (200, 409), r.text
    state = client.get(f"/api/sync/boards/{uid}", headers=h).json()["streams"]["scalars"]
    assert state["rows"] == 40
    assert [s["start"] for s in state["segments"]] == bounds[:-1]
    viewer = {**team.headers("viewer"), "X-KohakuBoard-Project": "vision"}
    r = client.get("/api/series.csv", params={"board": uid, "metric": "m"}, headers=viewer)
    assert r.status_code == 200, r.text
    lines = [line for line in r.text.splitlines()[1:] if line]
    assert len(lines) == 40
