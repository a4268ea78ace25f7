"""The viewer API on real boards (FastAPI's TestClient): every route, downsampling, smoothing,
NaN/Inf, x axes, errors, live updates and the local-mode protections."""

from __future__ import annotations

import ast
import http.client
import json
import math
import shutil
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from conftest import N_ALPHA, NONFINITE, SPIKES, Boards
from fastapi.testclient import TestClient
from helpers import wait_until
from viewer_helpers import bucket_extremes, reference_smooth

from kohakuboard import Board
from kohakuboard.errors import BoardNotFoundError
from kohakuboard.viewer import create_app
from kohakuboard.viewer.charts import MEDIA_TYPE, decode_binary
from kohakuboard.viewer.errors import BundleMissingError
from kohakuboard.viewer.server import ViewerThread
from kohakuboard.viewer.static import STATIC_DIR


def series(client: TestClient, **params: Any) -> dict[str, Any]:
    """GET /api/series in the binary format, decoded; asserts success."""
    params.setdefault("format", "bin")
    response = client.get("/api/series", params=params)
    assert response.status_code == 200, response.text
    if params["format"] == "json":
        return response.json()
    assert response.headers["content-type"] == MEDIA_TYPE
    return decode_binary(response.content)


# -- listing -----------------------------------------------------------------------------------
def test_info_and_projects(client: TestClient, boards: Boards) -> None:
    info = client.get("/api/info").json()
    assert info["boards"] == 2 and info["single_board"] is False
    assert info["title"] == boards.base.name
    projects = {p["name"]: p for p in client.get("/api/projects").json()}
    assert projects == {
        "default": {"name": "default", "boards": 1, "running": 0},
        "other": {"name": "other", "boards": 1, "running": 0},
    }


def test_board_list(client: TestClient, boards: Boards) -> None:
    listed = client.get("/api/boards").json()
    assert [b["name"] for b in listed] == ["alpha", "beta"]  # oldest first
    alpha = listed[0]
    assert alpha["id"] == boards.alpha and alpha["status"] == "finished"
    assert alpha["steps"] == N_ALPHA + 1 and alpha["index"] == 0 and listed[1]["index"] == 1
    assert alpha["metrics"] == 6  # 3 scalar series + image + table + histogram
    # nested scalars flattened, lists left out, long strings kept short
    assert alpha["config_summary"] == {"lr": 0.001, "opt.name": "adam", "note": "alpha run"}
    assert [b["name"] for b in client.get("/api/boards", params={"project": "other"}).json()] == [
        "beta"
    ]


def test_board_detail(client: TestClient, boards: Boards) -> None:
    detail = client.get(f"/api/boards/{boards.alpha}").json()
    assert detail["config"] == {
        "lr": 0.001,
        "opt": {"name": "adam", "betas": [0.9, 0.999]},
        "note": "alpha run",
    }
    assert detail["global_step"] == N_ALPHA // 10
    assert detail["series_by_kind"] == {"scalar": 3, "media": 1, "table": 1, "histogram": 1}


def test_metrics_of_a_board(client: TestClient, boards: Boards) -> None:
    body = client.get(f"/api/boards/{boards.alpha}/metrics").json()
    by_name = {m["name"]: m for m in body["metrics"]}
    assert [m["name"] for m in body["metrics"] if m["kind"] == "scalar"] == [
        "train/loss",
        "train/tokens",
        "val/acc",
    ]
    assert by_name["train/loss"]["count"] == N_ALPHA
    assert by_name["train/loss"]["last_step"] == N_ALPHA - 1
    assert {by_name[n]["kind"] for n in ("samples/image", "val/table", "weights/w")} == {
        "media",
        "table",
        "histogram",
    }


@pytest.mark.parametrize(
    "url",
    [
        "/api/boards/nope",
        "/api/boards/nope/metrics",
        "/api/series?board=nope&metric=train/loss",
        "/api/series.csv?board=nope&metric=train/loss",
        "/api/state?board=nope",
        "/api/events?board=nope",
    ],
)
def test_unknown_board_is_404(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404
    assert "no board 'nope'" in response.json()["detail"]


@pytest.mark.parametrize(
    ("match", "names"),
    [
        ("", ["alpha", "beta"]),
        ("^al", ["alpha"]),
        ("ALPHA|bet", ["alpha", "beta"]),
        ("a$", ["alpha", "beta"]),
        ("^(al|be)[pt]", ["alpha", "beta"]),
        ("(a+)+$", ["alpha", "beta"]),
        ("(", []),  # outside the subset: the text "(" itself, in no name
    ],
)
def test_boards_filtered_by_a_pattern(client: TestClient, match: str, names: list[str]) -> None:
    response = client.get("/api/boards", params={"match": match})
    assert [b["name"] for b in response.json()] == names


def test_metrics_filtered_by_a_pattern(client: TestClient, boards: Boards) -> None:
    url = f"/api/boards/{boards.alpha}/metrics"
    answer = client.get(url, params={"match": "^train/|acc$"}).json()
    assert [m["name"] for m in answer["metrics"]] == ["train/loss", "train/tokens", "val/acc"]


def test_catastrophic_patterns_are_answered_in_linear_time(tmp_path: Path) -> None:
    # (a+)+$ on 40 a's and a "!" takes about 2**40 steps in Python's re
    long = "a" * 4000 + "!"
    # a fixed id: the filter also looks at ids, and a random one ends in "a" 1 time in 16
    with Board(name=long, base_dir=tmp_path, board_id="run-1") as board:
        board.log(**{long: 1.0, "aaa": 2.0})
    evil = {"match": "(a+)+$"}
    with TestClient(create_app(tmp_path), base_url="http://127.0.0.1") as c:
        started = time.perf_counter()
        assert c.get("/api/boards", params=evil).json() == []
        metrics = c.get(f"/api/boards/{board.id}/metrics", params=evil).json()["metrics"]
        assert [m["name"] for m in metrics] == ["aaa"]
        assert time.perf_counter() - started < 20  # generous: a few ms here


# -- series ------------------------------------------------------------------------------------
def test_small_series_comes_whole_and_exact(client: TestClient, boards: Boards) -> None:
    doc = series(client, board=boards.beta, metric="train/loss", points=2000)
    (entry,) = doc["series"]
    assert entry["total"] == entry["count"] == 500 and entry["buckets"] == 0
    assert entry["arrays"]["x"].tolist() == list(range(500))
    assert entry["arrays"]["y"].tolist() == [1.0 / (i + 1) for i in range(500)]
    assert "smoothed" not in entry["arrays"]
    assert entry["last"] == {
        "step": 499,
        "global_step": 0,
        "wall_time": entry["last"]["wall_time"],
        "value": 1.0 / 500,
        "smoothed": None,
    }


def test_binary_and_json_carry_the_same_data(client: TestClient, boards: Boards) -> None:
    params = {"board": boards.alpha, "metric": "train/loss", "points": 300, "smoothing": 0.8}
    binary = series(client, **params)["series"][0]
    as_json = series(client, **params, format="json")["series"][0]
    for name in ("x", "y", "smoothed"):
        assert binary["arrays"][name].tolist() == as_json["arrays"][name]
    for key in ("total", "count", "buckets", "nonfinite", "last"):
        assert binary[key] == as_json[key]


@pytest.mark.parametrize("smoothing", [0.0, 0.6])
def test_downsampling_keeps_every_bucket_extreme_and_the_last_point(
    client: TestClient, boards: Boards, smoothing: float
) -> None:
    # 400 of 3,000 points: fewer than 8 logged points per asked point, so every point is read
    # (a chart of a level keeps every extreme too, but may show it in the neighbouring bucket)
    points = 400
    (entry,) = series(
        client, board=boards.alpha, metric="train/loss", points=points, smoothing=smoothing
    )["series"]
    k = points // (6 if smoothing else 4)
    assert entry["total"] == N_ALPHA and entry["buckets"] == k
    assert entry["count"] <= points
    xs = entry["arrays"]["x"].tolist()
    ys = entry["arrays"]["y"].tolist()
    assert xs == sorted(xs) and all(math.isfinite(v) for v in ys)
    steps = list(range(N_ALPHA))
    values = boards.alpha_loss.tolist()
    kept = dict(zip(xs, ys, strict=True))
    for bucket in bucket_extremes(steps, values, k).values():
        assert bucket["first_x"] in kept and bucket["last_x"] in kept
        assert kept[bucket["min_x"]] == bucket["min"] and kept[bucket["max_x"]] == bucket["max"]
    # the spikes survive, and so does the latest point
    for step, value in SPIKES.items():
        assert kept[step] == value
    assert xs[-1] == N_ALPHA - 1 and ys[-1] == values[-1]
    if smoothing:
        # the smoothed line's extremes too (located by x: values agree to ~1e-15)
        reference = reference_smooth(values, smoothing)
        smoothed = dict(zip(xs, entry["arrays"]["smoothed"].tolist(), strict=True))
        for bucket in bucket_extremes(steps, reference, k).values():
            assert smoothed[bucket["min_x"]] == pytest.approx(bucket["min"], rel=1e-12)
            assert smoothed[bucket["max_x"]] == pytest.approx(bucket["max"], rel=1e-12)


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.6, 0.9, 0.99, 0.999])
def test_smoothing_equals_the_reference_formula(
    client: TestClient, boards: Boards, weight: float
) -> None:
    (entry,) = series(
        client, board=boards.alpha, metric="train/loss", points=100_000, smoothing=weight
    )["series"]
    reference = reference_smooth(boards.alpha_loss, weight)
    xs = entry["arrays"]["x"].astype(int)
    got = entry["arrays"]["y"] if weight == 0 else entry["arrays"]["smoothed"]
    expected = np.array([reference[i] for i in xs])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert entry["last"]["value"] == boards.alpha_loss[-1]
    if weight:
        assert entry["last"]["smoothed"] == pytest.approx(reference[-1], rel=1e-9)


def test_constant_series_is_not_smoothed(client: TestClient, boards: Boards) -> None:
    (entry,) = series(client, board=boards.beta, metric="train/const", smoothing=0.9)["series"]
    assert entry["arrays"]["smoothed"].tolist() == [1.0] * 500


@pytest.mark.parametrize("points", [100_000, 200])
def test_nan_and_inf_positions_are_reported(
    client: TestClient, boards: Boards, points: int
) -> None:
    (entry,) = series(
        client, board=boards.alpha, metric="train/loss", points=points, smoothing=0.6
    )["series"]
    nonfinite = entry["nonfinite"]
    assert nonfinite == {
        "nan": {"count": 1, "x": [100.0]},
        "posinf": {"count": 1, "x": [200.0]},
        "neginf": {"count": 1, "x": [300.0]},
    }
    xs = set(entry["arrays"]["x"].tolist())
    assert not xs & set(NONFINITE)  # drawn arrays hold finite values only
    for name in ("y", "smoothed"):
        assert np.isfinite(entry["arrays"][name]).all()
    if points > N_ALPHA:
        assert entry["count"] == N_ALPHA - 3


def test_x_axes(client: TestClient, boards: Boards) -> None:
    def get(x: str) -> dict[str, Any]:
        return series(client, board=boards.alpha, metric="train/loss", x=x, points=100_000)[
            "series"
        ][0]

    by_step = get("step")
    steps = by_step["arrays"]["x"].astype(int)
    assert get("global_step")["arrays"]["x"].tolist() == (steps // 10).tolist()
    wall = get("wall_time")["arrays"]["x"]
    relative = get("relative_time")["arrays"]["x"]
    created = next(b for b in client.get("/api/boards").json() if b["name"] == "alpha")[
        "created_at"
    ]
    np.testing.assert_allclose(relative, wall - created)
    assert 0 <= relative[0] < 60 and np.all(np.diff(wall) >= 0)
    # another series as x: the value it had at the same step (tokens seen so far)
    by_tokens = get("train/tokens")
    assert by_tokens["arrays"]["x"].tolist() == [boards.alpha_tokens[s] for s in steps]
    assert by_tokens["arrays"]["y"].tolist() == by_step["arrays"]["y"].tolist()
    # val/acc logged every 100 steps: x=val/acc takes the latest value at or before a step
    by_acc = get("val/acc")
    assert by_acc["total"] == N_ALPHA - 99  # nothing before the first val/acc


def test_missing_series_is_empty_not_an_error(client: TestClient, boards: Boards) -> None:
    doc = series(
        client, board=[boards.alpha, boards.beta], metric=["train/tokens", "acc"], points=50
    )
    by_pair = {(s["board"], s["metric"]): s for s in doc["series"]}
    assert by_pair[(boards.alpha, "train/tokens")]["count"] > 0
    assert by_pair[(boards.alpha, "acc")]["missing"] == "no scalar series 'acc'"
    assert by_pair[(boards.beta, "train/tokens")]["count"] == 0
    assert by_pair[(boards.beta, "acc")]["count"] > 0
    missing_x = series(client, board=boards.beta, metric="acc", x="train/tokens")["series"][0]
    assert missing_x["missing"] == "no scalar series 'train/tokens' for the x axis"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"smoothing": 1.0}, "smoothing=1.0 is out of range; accepted: 0 <= smoothing <= 0.9999"),
        ({"smoothing": -0.1}, "smoothing=-0.1 is out of range"),
        ({"smoothing": "nan"}, "smoothing=nan is out of range"),
        ({"points": 3}, "points=3 is out of range; accepted: 8 <= points <= 100000"),
        ({"points": 10**7}, "points=10000000 is out of range"),
        ({"points": "many"}, "points: Input should be a valid integer"),
        ({"format": "xml"}, "format: Input should be 'bin' or 'json'"),
        ({"x": ""}, "x='': accepted: step, global_step, wall_time, relative_time or the name"),
    ],
)
def test_bad_series_parameters(
    client: TestClient, boards: Boards, params: dict[str, Any], message: str
) -> None:
    query = {"board": boards.beta, "metric": "acc", **params}
    response = client.get("/api/series", params=query)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_series_needs_a_board_and_a_metric(client: TestClient, boards: Boards) -> None:
    assert "board" in client.get("/api/series", params={"metric": "acc"}).json()["detail"]
    response = client.get("/api/series", params={"board": boards.beta})
    assert response.status_code == 422 and "metric" in response.json()["detail"]
    many = client.get(
        "/api/series", params={"board": boards.beta, "metric": [str(i) for i in range(300)]}
    )
    assert many.status_code == 422 and "at most 256" in many.json()["detail"]


def test_server_timing_header(client: TestClient, boards: Boards) -> None:
    response = client.get("/api/series", params={"board": boards.alpha, "metric": "train/loss"})
    assert response.headers["server-timing"].startswith("total;dur=")


def test_csv_is_full_resolution_and_exact(client: TestClient, boards: Boards) -> None:
    response = client.get(
        "/api/series.csv",
        params={"board": [boards.alpha, boards.beta], "metric": "train/loss", "smoothing": 0.5},
    )
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="train_loss.csv"'
    lines = response.text.splitlines()
    assert lines[0] == "board,name,metric,step,global_step,wall_time,value,smoothed"
    rows = [line.split(",") for line in lines[1:]]
    alpha = [r for r in rows if r[0] == boards.alpha]
    assert len(alpha) == N_ALPHA and len(rows) == N_ALPHA + 500
    values = [float(r[6]) for r in alpha]
    np.testing.assert_array_equal(values, boards.alpha_loss)  # NaN and +/-Inf included
    assert [alpha[s][6] for s in NONFINITE] == ["nan", "inf", "-inf"]
    np.testing.assert_allclose(
        [float(r[7]) for r in alpha], reference_smooth(boards.alpha_loss, 0.5), rtol=1e-9
    )


# -- live --------------------------------------------------------------------------------------
def test_state_snapshot(client: TestClient, boards: Boards) -> None:
    body = client.get("/api/state", params={"board": boards.beta}).json()
    state = body["boards"][boards.beta]
    assert state["status"] == "finished" and state["steps"] == 500
    assert state["metrics"]["train/loss"] == ["scalar", 500, 499]
    assert len(body["boards_sig"]) == 16
    assert client.get("/api/state").json()["boards"] == {}


def _events(url: str, stop: threading.Event, out: list[dict[str, Any]]) -> None:
    """Read an SSE stream with the standard library (a real socket, no buffering)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("GET", parts.path + "?" + parts.query)
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("content-type").startswith("text/event-stream")
    event = None
    while not stop.is_set():
        line = response.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "state":
            out.append(json.loads(line[6:]))
    conn.close()


def test_events_push_new_points_of_a_running_board(live_base: Path) -> None:
    board = Board(name="live", base_dir=live_base)
    try:
        board.log(**{"train/loss": 1.0})
        wait_until(lambda: _count(live_base, board.id) == 1, what="the first point")
        with ViewerThread(live_base, live_interval=0.1) as viewer:
            received: list[dict[str, Any]] = []
            stop = threading.Event()
            reader = threading.Thread(
                target=_events, args=(f"{viewer.url}api/events?board={board.id}", stop, received)
            )
            reader.start()
            wait_until(lambda: received, what="the first event")
            first = received[0]
            assert first["full"] is True
            assert first["boards"][board.id]["status"] == "running"
            assert first["boards"][board.id]["metrics"] == {"train/loss": ["scalar", 1, 0]}
            for i in range(5):
                board.log(**{"train/loss": 0.5, "val/acc": i / 5})

            def counted() -> bool:
                metrics = [e["boards"].get(board.id, {}).get("metrics", {}) for e in received[1:]]
                return any(m.get("train/loss", [0, 0])[1] == 6 for m in metrics)

            wait_until(counted, what="an event with the new points")
            delta = next(e for e in received[1:] if e["boards"])
            assert delta["full"] is False and "status" not in delta["boards"][board.id]
            board.finish()
            wait_until(
                lambda: any(
                    e["boards"].get(board.id, {}).get("status") == "finished" for e in received
                ),
                what="the finished status",
            )
            stop.set()
        reader.join(10)
        assert not reader.is_alive()  # the server ended the stream when it shut down
    finally:
        board.finish()


def _count(base: Path, board_id: str) -> int:
    from kohakuboard import open_board

    with open_board(base / board_id) as reader:
        return len(reader.scalars("train/loss"))


def test_new_boards_change_the_list_signature(live_base: Path) -> None:
    app = create_app(live_base)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        before = c.get("/api/state").json()["boards_sig"]
        with Board(name="late", base_dir=live_base) as board:
            board.log(x=1.0)
        app.state.catalog.boards(fresh=True)
        assert c.get("/api/state").json()["boards_sig"] != before
        assert [b["name"] for b in c.get("/api/boards").json()] == ["late"]


# -- local-mode protections --------------------------------------------------------------------
SECURITY = {
    "content-security-policy": "default-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'; object-src 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


@pytest.mark.parametrize(
    "path", ["/", "/api/boards", "/api/boards/nope", "/nope.js", "/favicon.svg"]
)
def test_security_headers_on_every_response(client: TestClient, path: str) -> None:
    response = client.get(path)
    for name, value in SECURITY.items():
        assert response.headers[name] == value


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.0.0.1:48889", True),
        ("localhost:8080", True),
        ("[::1]:48889", True),
        ("evil.example", False),
        ("evil.example:48889", False),
        ("127.0.0.1.evil.example", False),
        ("localhost.evil.example", False),
        ("192.168.1.20:48889", False),  # bound to 127.0.0.1: no other address is this server
        ("", False),
        # the port part must be a port: these once passed as "127.0.0.1"
        ("127.0.0.1:1@evil.com", False),
        ("127.0.0.1:48889@evil.example", False),
        ("localhost:http", False),
        ("127.0.0.1:99999", False),
        ("127.0.0.1:0", False),
        ("127.0.0.1:", False),
        ("[::1]:1@evil.com", False),
        ("[::1]evil.example", False),
        ("127.0.0.1 evil.example", False),
    ],
)
def test_host_header_is_checked(client: TestClient, host: str, allowed: bool) -> None:
    response = client.get("/api/boards", headers={"host": host})
    assert (response.status_code == 200) is allowed
    if not allowed:
        assert response.status_code == 400
        assert "Host header" in response.json()["detail"]


def test_bound_to_every_interface_accepts_ip_literals(boards: Boards) -> None:
    from kohakuboard.viewer.security import allowed_hosts_for

    names, any_ip = allowed_hosts_for("0.0.0.0")
    app = create_app(boards.base, allowed_hosts=names, allow_ip_hosts=any_ip)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert c.get("/api/info", headers={"host": "192.168.1.20:48889"}).status_code == 200
        assert c.get("/api/info", headers={"host": "[fe80::1]:48889"}).status_code == 200
        assert c.get("/api/info", headers={"host": "rebind.evil.example"}).status_code == 400


@pytest.mark.parametrize(
    "path", ["/", "/api/info", "/api/boards", "/api/state", "/favicon.svg", "/api/nope"]
)
def test_head_is_answered_like_get_without_a_body(client: TestClient, path: str) -> None:
    got = client.get(path)
    head = client.head(path)
    assert head.status_code == got.status_code != 405
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    if path != "/api/state":  # the live state may change between the two requests
        assert head.headers["content-length"] == str(len(got.content))
    assert head.headers["x-frame-options"] == "DENY"


def test_head_of_an_event_stream_ends_after_its_headers(server: ViewerThread) -> None:
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("HEAD", "/api/events")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("content-type", "").startswith("text/event-stream")
        assert response.read() == b""
        conn.request("HEAD", "/api/info")  # the connection is still usable
        assert conn.getresponse().status == 200
    finally:
        conn.close()


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_read_only(client: TestClient, boards: Boards, method: str) -> None:
    response = client.request(method, f"/api/boards/{boards.alpha}")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/api/nope"])
def test_no_docs_pages_and_no_unknown_routes(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


TRAVERSALS = [
    "/../../../../etc/passwd",
    "/assets/../../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/assets/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/%252e%252e/%252e%252e/%252e%252e/etc/passwd",
    "/assets/%252e%252e%252f%252e%252e%252fpyproject.toml",
    "/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/assets/..%5c..%5c..%5c..%5cetc%5cpasswd",
    "/assets%5c..%5c..%5cbundle.py",
    "/..\\..\\..\\etc\\passwd",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/C:/Windows/win.ini",
    "/C:%5cWindows%5cwin.ini",
    "/assets/%00../../../etc/passwd",
    "/../bundle.py",
    "/%2e%2e/bundle.py",
    "/%2e%2e%2fbundle.py",
    "/static/../app.py",
    "/api/boards/..%2f..%2f..%2fetc",
    "/api/boards/%2e%2e",
    "/api/series?board=..%2F..%2Fetc&metric=passwd",
    "/api/series?board=%2Fetc%2Fpasswd&metric=x",
]


def _raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET with the path sent byte for byte (http.client does not normalise it)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", f"127.0.0.1:{parts.port}")
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_traversal_attempts_are_refused(server: ViewerThread) -> None:
    secret_markers = [b"root:", b"[build-system]", b"def create_app", b"sha256", b"[fonts]"]
    for path in TRAVERSALS:
        status, body = _raw_get(server.url, path)
        assert status in (400, 404), (path, status, body[:200])
        assert not any(m in body for m in secret_markers), path
    status, body = _raw_get(server.url, "/favicon.svg")
    assert status == 200 and body.startswith(b"<svg")


def test_symlink_out_of_the_bundle_is_not_followed(tmp_path: Path, boards: Boards) -> None:
    bundle = tmp_path / "static"
    shutil.copytree(STATIC_DIR, bundle)
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    (bundle / "assets" / "leak.txt").symlink_to(secret)
    (bundle / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    app = create_app(boards.base, static_dir=bundle)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        for path in ("/assets/leak.txt", "/dirlink/secret.txt"):
            response = c.get(path)
            assert response.status_code == 404 and "top secret" not in response.text


def test_safe_file_rules(tmp_path: Path) -> None:
    from kohakuboard.viewer.static import safe_file

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.js").write_text("x")
    assert safe_file(tmp_path, "a/b.js") == (tmp_path / "a" / "b.js").resolve()
    for bad in [
        "",
        "a",
        "/a/b.js",
        "../a/b.js",
        "a/../a/b.js",
        "a\\b.js",
        "a/./b.js",
        "C:/a/b.js",
        "a/b.js\x00",
    ]:
        assert safe_file(tmp_path, bad) is None, bad


# -- start-up checks and modes -----------------------------------------------------------------
def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(BoardNotFoundError, match=f"no such folder: {tmp_path / 'nope'}"):
        create_app(tmp_path / "nope")


def test_missing_or_incomplete_bundle_is_named(tmp_path: Path, boards: Boards) -> None:
    with pytest.raises(BundleMissingError, match=f"no {tmp_path / 'index.html'}"):
        create_app(boards.base, static_dir=tmp_path)
    (tmp_path / "index.html").write_text('<script type="module" src="/assets/app.js"></script>')
    with pytest.raises(BundleMissingError, match=f"refers to {tmp_path / 'assets' / 'app.js'}"):
        create_app(boards.base, static_dir=tmp_path)


def test_one_board_folder_serves_that_board(boards: Boards) -> None:
    app = create_app(boards.base / boards.beta)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert c.get("/api/info").json()["single_board"] is True
        assert [b["id"] for b in c.get("/api/boards").json()] == [boards.beta]
        assert c.get(f"/api/boards/{boards.alpha}").status_code == 404


def test_empty_folder_lists_nothing(tmp_path: Path) -> None:
    with TestClient(create_app(tmp_path), base_url="http://127.0.0.1") as c:
        assert c.get("/api/boards").json() == []


def test_series_cache_sees_new_points(live_base: Path) -> None:
    board = Board(name="growing", base_dir=live_base)
    try:
        board.log(v=1.0)
        wait_until(lambda: _series_len(live_base, board.id) == 1, what="the first point")
        with TestClient(create_app(live_base), base_url="http://127.0.0.1") as c:
            first = series(c, board=board.id, metric="v")["series"][0]
            assert first["total"] == 1
            board.log(v=2.0)
            wait_until(
                lambda: series(c, board=board.id, metric="v")["series"][0]["total"] == 2,
                what="the second point through the cache",
            )
    finally:
        board.finish()


def _series_len(base: Path, board_id: str) -> int:
    from kohakuboard import open_board

    with open_board(base / board_id) as reader:
        return len(reader.scalars("v"))


def test_no_storage_backend_is_imported_by_the_viewer() -> None:
    """The viewer reads through kohakuboard.reader only (type-only imports aside)."""
    viewer = Path(__file__).resolve().parents[2] / "kohakuboard" / "viewer"
    for source in viewer.glob("*.py"):
        tree = ast.parse(source.read_text())
        type_only = {
            id(node)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
            for node in ast.walk(block)
        }
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in type_only:
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [alias.name for alias in node.names]
                assert not any("storage" in n for n in names), (source.name, ast.unparse(node))


def test_viewer_thread_gives_a_working_url(boards: Boards) -> None:
    with ViewerThread(boards.base) as viewer:
        status, body = _raw_get(viewer.url, "/api/info")
        assert status == 200 and json.loads(body)["boards"] == 2


def test_reading_one_series_of_a_finished_board_reads_only_that_series(boards: Boards) -> None:
    app = create_app(boards.base)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        series(c, board=boards.alpha, metric="val/acc")
        cached = {k[2] for k in app.state.catalog._cache.keys() if k[:2] == ("full", boards.alpha)}
        assert cached == {"val/acc"}  # compacted: one series costs its own rows (seriescache)
        loss = series(c, board=boards.alpha, metric="train/loss", points=100_000)["series"][0]
        assert loss["count"] == N_ALPHA - 3


def test_open_readers_are_bounded(boards: Boards, monkeypatch: pytest.MonkeyPatch) -> None:
    from kohakuboard.viewer import catalog

    monkeypatch.setattr(catalog, "MAX_OPEN_READERS", 1)
    app = create_app(boards.base)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        for _ in range(2):
            for board_id in (boards.alpha, boards.beta):
                assert c.get(f"/api/boards/{board_id}/metrics").status_code == 200
                assert len(app.state.catalog._readers) == 1
