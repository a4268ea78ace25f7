"""``/api/histograms/range?format=bin``: decoded here from the layout in docs/viewer.md, it
says what the JSON form says, counts within half a quantisation step of their row's maximum
(row max / 510 for uint8, / 131070 for uint16), rows of zeros exactly zero, NaN and +-Inf
statistics kept, finite statistics beyond float32's range kept finite."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from kohakuboard import Board, Histogram
from kohakuboard.viewer import create_app

HEAD = struct.Struct("<4sHBBIIII")
STAT_KEYS = ("mean", "std", "min", "max")


def decode(payload: bytes) -> dict[str, Any]:
    """The range as the JSON form has it (null statistics as NaN), plus ``count_bytes`` and
    ``stat_bytes``; written from the documented layout, not from the server's code."""
    magic, version, cw, sw, k, b, p, h = HEAD.unpack_from(payload)
    assert (magic, version) == (b"KBHR", 1)
    doc: dict[str, Any] = json.loads(payload[HEAD.size : HEAD.size + h])
    at = HEAD.size + h
    assert at % 8 == 0

    def take(dtype: str, n: int) -> np.ndarray:
        nonlocal at
        out = np.frombuffer(payload, dtype=dtype, count=n, offset=at)
        at += out.nbytes
        return out

    floats = {4: "<f4", 8: "<f8"}[sw]
    doc["count"] = take("<f8", k)
    for key in STAT_KEYS:
        doc[key] = take(floats, k).astype(np.float64)
    doc["percentiles"] = take(floats, k * p).astype(np.float64).reshape(k, p)
    scale = take("<f4", k).astype(np.float64)
    q = take({1: "<u1", 2: "<u2"}[cw], k * b).reshape(k, b)
    assert at == len(payload)
    doc["counts"] = q * scale[:, None]
    doc.update(count_bytes=cw, stat_bytes=sw)
    return doc


def floats(values: Any) -> np.ndarray:
    """A JSON column as floats: null -> NaN, "Infinity" -> inf."""
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


@dataclass(frozen=True)
class Served:
    client: TestClient
    board: str  # id

    def get(self, **params: Any) -> Any:
        return self.client.get("/api/histograms/range", params={"board": self.board, **params})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("hist-binary")
    rng = np.random.default_rng(5)
    with Board(name="bins", base_dir=base) as board:
        for step in range(30):
            values: dict[str, Any] = {
                "small": Histogram(rng.normal(step / 10, 1, 1000), bins=32),  # peaks < 255
                "log": Histogram(rng.normal(0, 10.0**-step % 7, 500), bins=15, scale="log"),
            }
            if step < 8:
                big = rng.normal(0, 1 + step, 200_000)
                # steps 2 and 5: every value outside the range, so no bin holds anything
                span = (50.0, 60.0) if step in (2, 5) else None
                values["big"] = Histogram(big, bins=40, range=span)
            if step < 3:
                odd = [
                    [1.7e308, 1.7e308, -1e308, 0.0],  # every statistic past float32
                    [math.nan, math.inf],  # no finite value: unknown statistics, zero counts
                    [1.0, 2.0, 2.5],
                ][step]
                values["odd"] = Histogram(odd, bins=4, range=(-1.0, 3.0))
            if step < 4:
                # magnitudes float32 cannot hold (1e-300) or resolve (a spread of 0.01 at 1e7)
                values["tiny"] = Histogram(rng.normal(0, 1e-300, 300), bins=16)
                values["narrow"] = Histogram(1e7 + rng.normal(0, 0.01, 300), bins=16)
            if step < 2:
                values["huge"] = Histogram(
                    [[1.7e308, -1e308, 0.0], [-1e308, 1.7e308]][step], bins=4
                )
            board.log(**values)
    with TestClient(create_app(base), base_url="http://127.0.0.1") as client:
        yield Served(client, board.id)


def both(served: Served, **params: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    as_json = served.get(**params)
    binary = served.get(**params, format="bin")
    assert as_json.status_code == binary.status_code == 200, (as_json.text, binary.text)
    assert binary.headers["content-type"] == "application/x-kohakuboard-histograms"
    assert "total;dur=" in binary.headers["server-timing"]
    assert len(binary.content) < len(as_json.content)
    return as_json.json(), decode(binary.content)


QUERIES = [
    {"name": "small", "max_steps": 500, "bins": 64},
    {"name": "small", "max_steps": 7, "bins": 2},
    {"name": "small", "start": 4, "end": 17, "bins": 512},
    {"name": "big", "bins": 64},
    {"name": "big", "max_steps": 3, "bins": 9},
    {"name": "log", "bins": 21},
    {"name": "odd", "bins": 8},
]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: "-".join(map(str, q.values())))
def test_binary_equals_json_within_the_quantisation_bound(
    served: Served, query: dict[str, Any]
) -> None:
    js, bn = both(served, **query)
    for key in ("board", "name", "total_steps", "steps", "global_steps", "scale", "lo", "hi",
                "edges", "percentile_keys"):  # fmt: skip
        assert bn[key] == js[key], key
    counts = np.asarray(js["counts"], dtype=np.float64)
    assert bn["counts"].shape == counts.shape == (len(js["steps"]), len(js["edges"]) - 1)
    top = {1: 255, 2: 65535}[bn["count_bytes"]]
    for got, want in zip(bn["counts"], counts, strict=True):
        # half a step of the row's maximum, plus the 3 decimals the JSON form rounds to
        bound = want.max() / top / 2 * (1 + 1e-6) + 0.0005 + 1e-9
        assert np.abs(got - want).max() <= bound
        assert (got[want == 0] == 0).all()  # what is empty stays empty
    assert bn["count"].tolist() == js["count"]
    exact = bn["stat_bytes"] == 8
    for key in STAT_KEYS:
        np.testing.assert_allclose(bn[key], floats(js[key]), rtol=0 if exact else 1e-7)
    want_pct = np.array([floats(row) for row in js["percentiles"]]).reshape(-1, 9)
    np.testing.assert_allclose(bn["percentiles"], want_pct, rtol=0 if exact else 1e-7)


def test_count_width_follows_the_largest_bin(served: Served) -> None:
    _, small = both(served, name="small", bins=64)
    _, big = both(served, name="big", bins=64)
    assert small["count_bytes"] == 1 and small["counts"].max() <= 255
    assert big["count_bytes"] == 2 and big["counts"].max() > 255


def test_rows_of_zeros_are_exactly_zero(served: Served) -> None:
    js, bn = both(served, name="big", bins=64)
    empty = [js["steps"].index(s) for s in (2, 5)]
    assert all(sum(js["counts"][i]) == 0 for i in empty)
    assert all((bn["counts"][i] == 0).all() for i in empty)
    assert all(bn["counts"][i].sum() > 0 for i in range(len(js["steps"])) if i not in empty)


def test_nonfinite_and_huge_statistics_survive(served: Served) -> None:
    js, bn = both(served, name="odd", bins=8)
    assert bn["stat_bytes"] == 8  # 1.7e308 does not fit a float32
    # mean 6e307 and std 1.155e308 (their sums would overflow; the logger scales them)
    assert (bn["mean"][0], bn["std"][0]) == (js["mean"][0], js["std"][0])
    assert bn["mean"][0] == pytest.approx(6e307) and bn["std"][0] == pytest.approx(1.1554220008e308)
    assert (bn["min"][0], bn["max"][0]) == (-1e308, 1.7e308)
    assert js["mean"][1] is None and np.isnan([bn[k][1] for k in STAT_KEYS]).all()
    assert np.isnan(bn["percentiles"][1]).all()
    assert (bn["counts"][1] == 0).all()
    _, small = both(served, name="small", bins=8)
    assert small["stat_bytes"] == 4


@pytest.mark.parametrize("name", ["tiny", "narrow"])
def test_statistics_float32_cannot_resolve_keep_their_spread(served: Served, name: str) -> None:
    """1e-300 would flush to 0 in float32; 1e7 +- 0.01 would round to 1e7 and the
    distribution bands would collapse into one line."""
    js, bn = both(served, name=name, bins=8)
    want = np.array([floats(row) for row in js["percentiles"]])
    spread = want.max() - want.min()
    assert spread > 0
    assert np.abs(bn["percentiles"] - want).max() <= spread * 1e-4
    for key in STAT_KEYS:
        column = floats(js[key])
        allowed = (column.max() - column.min()) * 1e-4 or abs(column).max() * 1e-6
        assert np.abs(bn[key] - column).max() <= allowed, key
    assert (bn["min"] != 0).all() and (bn["max"] != 0).all()


def test_a_span_past_the_largest_float(served: Served) -> None:
    """Values from -1e308 to 1.7e308 on the logger's own range: the common grid spans them."""
    js, bn = both(served, name="huge", bins=8)
    edges = floats(js["edges"])
    assert np.isfinite(edges).all() and (np.diff(edges) > 0).all()
    assert (edges[0], edges[-1]) == (-1e308, 1.7e308)
    assert [sum(row) for row in js["counts"]] == [3, 2]
    assert np.allclose(bn["counts"].sum(axis=1), [3, 2], rtol=0.01)


def test_an_empty_window(served: Served) -> None:
    js, bn = both(served, name="small", start=100, end=200)
    assert js["steps"] == bn["steps"] == [] and bn["total_steps"] == 0
    assert bn["lo"] is bn["hi"] is None and bn["edges"] == []
    assert bn["counts"].shape == (0, 0) and bn["count"].size == 0


def test_json_stays_the_default(served: Served) -> None:
    plain = served.get(name="small")
    named = served.get(name="small", format="json")
    assert plain.headers["content-type"] == "application/json"
    assert plain.json() == named.json()


@pytest.mark.parametrize("value", ["xml", "BIN", ""])
def test_a_bad_format_is_rejected(served: Served, value: str) -> None:
    response = served.get(name="small", format=value)
    assert response.status_code == 422
    assert response.json()["detail"] == f"format: Input should be 'json' or 'bin' (got {value!r})"
