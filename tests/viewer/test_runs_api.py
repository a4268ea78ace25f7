"""The runs API: the runs table, run edits (rename, notes, tags, soft delete) and their
protection against cross-site requests, the checkpoints of a run, and edits made while a real
training process is still logging to the board."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import Script, wait_until

import kohakuboard
from kohakuboard import Board, Table, list_boards, open_board
from kohakuboard.viewer import create_app
from kohakuboard.viewer.routes_runs import flatten_config
from kohakuboard.viewer.server import ViewerThread

REPO = Path(__file__).resolve().parents[2]
WRITE = {"X-KohakuBoard": "1"}
NAN = "NaN"

MLP_CONFIG = {
    "optimizer": {"name": "adam", "lr": 0.01, "betas": [0.9, 0.99]},
    "model": {"layers": 4, "act": {"kind": "gelu"}},
    "seed": 1,
    "flag": True,
    "nothing": None,
    "empty": {},
}
MLP_FLAT = {
    "optimizer.name": "adam",
    "optimizer.lr": 0.01,
    "optimizer.betas": "[0.9,0.99]",
    "model.layers": 4,
    "model.act.kind": "gelu",
    "seed": 1,
    "flag": True,
    "nothing": None,
    "empty": "{}",
}
LOSS = [3.0, 1.0, 2.0, math.nan, 0.5, math.inf, 0.7, math.nan]


@pytest.fixture(scope="module")
def runs_base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three finished runs with known values (read-only tests only: never edited)."""
    base = tmp_path_factory.mktemp("runs")
    with Board(name="mlp", base_dir=base, config=MLP_CONFIG) as mlp:
        for i, value in enumerate(LOSS):
            values = {"train/loss": value, "dead": math.nan}
            if i % 3 == 0:
                values["val/acc"] = i / 10
            mlp.log(**values)
        mlp.log(checkpoints=Table([["old.ckpt", 1]], columns=["path", "global_step"]))
        (mlp.path / "ckpt").mkdir()
        (mlp.path / "ckpt" / "epoch=2.ckpt").write_bytes(b"weights")
        rows = [
            ["ckpt/epoch=2.ckpt", 2, 0.25, True],  # relative: inside the board folder
            [str(base / "gone" / "epoch=1.ckpt"), 1, math.nan, False],  # pruned
        ]
        mlp.step(5)
        mlp.log(checkpoints=Table(rows, columns=["path", "global_step", "score", "is_best"]))
    with Board(name="cnn", base_dir=base, config={"optimizer": {"lr": 0.1}, "arch": "conv"}) as cnn:
        for i in range(50):
            cnn.log(**{"train/loss": 10.0 - i * 0.1, "extra": float(i)})
    with Board(name="trainer", base_dir=base) as trainer:
        trainer.log(**{"fit/checkpoints": Table([[None, 7]], columns=["path", "global_step"])})
    return {"base": base, "mlp": mlp.id, "cnn": cnn.id, "trainer": trainer.id, "mlp_path": mlp.path}


@pytest.fixture(scope="module")
def runs_client(runs_base: dict[str, Any]) -> Iterator[TestClient]:
    with TestClient(create_app(runs_base["base"]), base_url="http://127.0.0.1") as c:
        yield c


def summary(values: list[float], steps: list[int]) -> dict[str, Any]:
    """Reference summary of a series, written from the contract: over finite values."""
    finite = [(s, v) for s, v in zip(steps, values, strict=True) if math.isfinite(v)]
    if not finite:
        return {"last": NAN, "min": NAN, "max": NAN, "count": len(values), "last_step": None}
    return {
        "last": finite[-1][1],
        "min": min(v for _, v in finite),
        "max": max(v for _, v in finite),
        "count": len(values),
        "last_step": finite[-1][0],
    }


# -- GET /api/runs -----------------------------------------------------------------------------
def test_runs_list_with_config_and_metric_summaries(
    runs_client: TestClient, runs_base: dict[str, Any]
) -> None:
    body = runs_client.get("/api/runs").json()
    runs = {r["id"]: r for r in body["runs"]}
    assert [r["name"] for r in body["runs"]] == ["mlp", "cnn", "trainer"]  # creation order
    assert [r["index"] for r in body["runs"]] == [0, 1, 2]
    mlp, cnn = runs[runs_base["mlp"]], runs[runs_base["cnn"]]
    assert mlp["config"] == MLP_FLAT
    assert list(mlp["config"]) == list(MLP_FLAT)  # the config's own order
    assert cnn["config"] == {"optimizer.lr": 0.1, "arch": "conv"}

    steps = list(range(len(LOSS)))
    assert mlp["metrics"]["train/loss"] == summary(LOSS, steps)
    assert mlp["metrics"]["train/loss"] == {
        "last": 0.7, "min": 0.5, "max": 3.0, "count": 8, "last_step": 6
    }  # fmt: skip
    assert mlp["metrics"]["val/acc"] == summary([0.0, 0.3, 0.6], [0, 3, 6])
    assert mlp["metrics"]["dead"] == summary([math.nan] * 8, steps)
    loss = [10.0 - i * 0.1 for i in range(50)]
    assert cnn["metrics"]["train/loss"] == summary(loss, list(range(50)))
    assert cnn["metrics"]["extra"] == summary([float(i) for i in range(50)], list(range(50)))
    assert runs[runs_base["trainer"]]["metrics"] == {}

    with open_board(runs_base["mlp_path"]) as reader:
        info, progress = reader.info(), reader.progress()
    assert mlp["status"] == "finished" and not mlp["deleted"] and mlp["deleted_at"] is None
    assert (mlp["steps"], mlp["global_step"]) == (info.steps, progress.global_step)
    assert (mlp["created_at"], mlp["updated_at"]) == (info.created_at, info.updated_at)
    assert mlp["duration"] == pytest.approx(info.updated_at - info.created_at)
    assert (mlp["original_name"], mlp["tags"], mlp["notes"], mlp["project"]) == (
        "mlp", [], "", "default"
    )  # fmt: skip
    assert body["metric_names"] == ["train/loss", "dead", "val/acc", "extra"]
    assert body["config_keys"] == [*MLP_FLAT, "arch"]


def test_config_flattening_of_odd_values() -> None:
    config = {"a": {"b": {"c": math.nan}}, "t": (1, "x"), "big": [[1, 2], {"k": None}], "o": object}
    flat = flatten_config(config)
    assert flat == {"a.b.c": "NaN", "t": '[1,"x"]', "big": '[[1,2],{"k":null}]', "o": flat["o"]}
    assert isinstance(flat["o"], str)


def test_runs_metric_filter(runs_client: TestClient, runs_base: dict[str, Any]) -> None:
    body = runs_client.get("/api/runs?metric=extra&metric=train/loss&metric=nope").json()
    runs = {r["id"]: r for r in body["runs"]}
    assert list(runs[runs_base["mlp"]]["metrics"]) == ["train/loss"]
    assert list(runs[runs_base["cnn"]]["metrics"]) == ["extra", "train/loss"]
    assert body["metric_names"] == ["train/loss", "dead", "val/acc", "extra"]  # still all


def test_runs_index_is_the_board_list_index(runs_client: TestClient) -> None:
    boards = {b["id"]: b["index"] for b in runs_client.get("/api/boards").json()}
    runs = {r["id"]: r["index"] for r in runs_client.get("/api/runs").json()["runs"]}
    assert boards == runs


# -- checkpoints -------------------------------------------------------------------------------
def test_checkpoints_are_the_newest_table_with_files_checked(
    runs_client: TestClient, runs_base: dict[str, Any]
) -> None:
    body = runs_client.get(f"/api/runs/{runs_base['mlp']}/checkpoints").json()
    assert body["board"] == runs_base["mlp"] and body["name"] == "checkpoints"
    assert body["columns"] == ["path", "global_step", "score", "is_best"]
    assert body["rows"] == [
        ["ckpt/epoch=2.ckpt", 2, 0.25, True],
        [str(runs_base["base"] / "gone" / "epoch=1.ckpt"), 1, NAN, False],
    ]
    assert body["exists"] == [True, False]
    assert (body["step"], body["global_step"]) == (9, 5)  # the 10th log() call, after step(5)


def test_checkpoints_under_a_prefix_and_without_a_path(
    runs_client: TestClient, runs_base: dict[str, Any]
) -> None:
    body = runs_client.get(f"/api/runs/{runs_base['trainer']}/checkpoints").json()
    assert (body["name"], body["rows"], body["exists"]) == ("fit/checkpoints", [[None, 7]], [False])


def test_no_checkpoints_table(runs_client: TestClient, runs_base: dict[str, Any]) -> None:
    body = runs_client.get(f"/api/runs/{runs_base['cnn']}/checkpoints").json()
    assert body == {
        "board": runs_base["cnn"],
        "name": None,
        "step": None,
        "global_step": None,
        "columns": [],
        "rows": [],
        "exists": [],
    }
    assert runs_client.get("/api/runs/nope/checkpoints").status_code == 404


# -- edits -------------------------------------------------------------------------------------
@pytest.fixture
def edit_base(tmp_path: Path) -> dict[str, str]:
    """Three small finished runs of this test alone (edits never touch the shared boards)."""
    base = tmp_path / "boards"
    ids = {}
    for name in ("a", "b", "c"):
        with Board(name=name, base_dir=base, config={"n": name}) as board:
            board.log(loss=1.0)
            board.log(loss=0.5)
        ids[name] = board.id
    return {"base": str(base), **ids}


@pytest.fixture
def edit_client(edit_base: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(edit_base["base"]), base_url="http://127.0.0.1") as c:
        yield c


def test_rename_notes_tags_round_trip(edit_client: TestClient, edit_base: dict[str, str]) -> None:
    a = edit_base["a"]
    edit = {"name": " baseline ", "notes": "lr too high", "tags": ["lr", "sweep-1"]}
    response = edit_client.patch(f"/api/runs/{a}", json=edit, headers=WRITE)
    assert response.status_code == 200, response.text
    run = response.json()
    assert (run["id"], run["name"], run["original_name"]) == (a, "baseline", "a")
    assert (run["notes"], run["tags"], run["index"]) == ("lr too high", ["lr", "sweep-1"], 0)
    assert run["metrics"]["loss"] == {
        "last": 0.5,
        "min": 0.5,
        "max": 1.0,
        "count": 2,
        "last_step": 1,
    }

    listed = next(r for r in edit_client.get("/api/runs").json()["runs"] if r["id"] == a)
    assert listed == run
    board = next(b for b in edit_client.get("/api/boards").json() if b["id"] == a)
    assert (board["name"], board["tags"], board["notes"], board["deleted"]) == (
        "baseline", ["lr", "sweep-1"], "lr too high", False
    )  # fmt: skip
    detail = edit_client.get(f"/api/boards/{a}").json()
    assert (detail["name"], detail["tags"]) == ("baseline", ["lr", "sweep-1"])
    info = next(b for b in kohakuboard.list_boards(edit_base["base"]) if b.id == a)
    assert (info.name, info.tags, info.notes) == ("baseline", ("lr", "sweep-1"), "lr too high")

    # only the fields given change; null clears one
    run = edit_client.patch(f"/api/runs/{a}", json={"tags": ["x"]}, headers=WRITE).json()
    assert (run["name"], run["notes"], run["tags"]) == ("baseline", "lr too high", ["x"])
    run = edit_client.patch(
        f"/api/runs/{a}", json={"name": None, "notes": None}, headers=WRITE
    ).json()
    assert (run["name"], run["notes"], run["tags"]) == ("a", "", ["x"])
    assert edit_client.patch(f"/api/runs/{a}", json={}, headers=WRITE).json() == run


def test_soft_delete_and_restore_keep_colour_indexes(
    edit_client: TestClient, edit_base: dict[str, str]
) -> None:
    a, b, c = edit_base["a"], edit_base["b"], edit_base["c"]
    base = edit_base["base"]
    deleted = edit_client.delete(f"/api/runs/{b}", headers=WRITE)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deleted"] is True and deleted.json()["deleted_at"] > 0

    boards = edit_client.get("/api/boards").json()
    assert [(x["id"], x["index"]) for x in boards] == [(a, 0), (c, 2)]  # c keeps its colour
    every = edit_client.get("/api/boards?include_deleted=1").json()
    assert [(x["id"], x["index"], x["deleted"]) for x in every] == [
        (a, 0, False), (b, 1, True), (c, 2, False)
    ]  # fmt: skip
    runs = edit_client.get("/api/runs").json()["runs"]
    assert [(r["id"], r["index"]) for r in runs] == [(a, 0), (c, 2)]
    runs = edit_client.get("/api/runs?include_deleted=1").json()["runs"]
    assert [(r["id"], r["deleted"]) for r in runs] == [(a, False), (b, True), (c, False)]
    assert edit_client.get(f"/api/boards/{b}").json()["deleted"] is True  # still readable by id
    assert edit_client.get("/api/info").json()["boards"] == 2
    assert [x.id for x in list_boards(base)] == [a, c]
    assert [x.id for x in list_boards(base, include_deleted=True)] == [a, b, c]

    restored = edit_client.post(f"/api/runs/{b}/restore", headers=WRITE)
    assert restored.status_code == 200, restored.text
    assert restored.json()["deleted"] is False and restored.json()["deleted_at"] is None
    assert [x["id"] for x in edit_client.get("/api/boards").json()] == [a, b, c]
    assert [x.id for x in list_boards(base)] == [a, b, c]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "  "}, "name: must not be blank"),
        ({"name": "x" * 201}, "name: 201 characters"),
        ({"notes": "n" * 20_001}, "notes: 20001 characters"),
        ({"tags": ["a,b"]}, "tags: 'a,b' contains a comma"),
        ({"tags": ["a", "a"]}, "tags: 'a' is given twice"),
        ({"tags": "a"}, "body.tags"),
        ({"name": 5}, "body.name"),
        ({"colour": "red"}, "body.colour"),
    ],
)
def test_bad_edits_are_422_naming_the_field(
    csrf_client: tuple[TestClient, str], body: dict, field: str
) -> None:
    client, run = csrf_client
    before = client.get(f"/api/boards/{run}").json()
    response = client.patch(f"/api/runs/{run}", json=body, headers=WRITE)
    assert response.status_code == 422
    assert field in response.json()["detail"]
    assert client.get(f"/api/boards/{run}").json() == before


def test_edits_of_an_unknown_run_are_404(csrf_client: tuple[TestClient, str]) -> None:
    client, _ = csrf_client
    assert client.patch("/api/runs/nope", json={}, headers=WRITE).status_code == 404
    assert client.delete("/api/runs/nope", headers=WRITE).status_code == 404
    assert client.post("/api/runs/a.b/restore", headers=WRITE).status_code == 404
    response = client.post("/api/runs/..%2f..%2fetc/restore", headers=WRITE)
    assert response.status_code in (404, 405)


# -- cross-site request forgery and read-only mode ---------------------------------------------
def _edit(client: TestClient, run: str, method: str, headers: dict[str, str]) -> Any:
    if method == "PATCH":
        return client.request(
            method, f"/api/runs/{run}", content=b'{"notes": "x"}', headers=headers
        )
    if method == "DELETE":
        return client.request(method, f"/api/runs/{run}", headers=headers)
    return client.request(method, f"/api/runs/{run}/restore", headers=headers)


JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def csrf_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    """A viewer on one run of this module's own (the few allowed edits land there)."""
    base = tmp_path_factory.mktemp("csrf")
    with Board(name="target", base_dir=base) as board:
        board.log(loss=1.0)
    with TestClient(create_app(base), base_url="http://127.0.0.1") as c:
        yield c, board.id


@pytest.mark.parametrize("method", ["PATCH", "DELETE", "POST"])
@pytest.mark.parametrize(
    ("headers", "status", "why"),
    [
        ({**JSON}, 403, "X-KohakuBoard: 1"),
        ({**JSON, "X-KohakuBoard": "0"}, 403, "X-KohakuBoard: 1"),
        ({**JSON, **WRITE, "Origin": "http://evil.example"}, 403, "Origin"),
        ({**JSON, **WRITE, "Origin": "http://127.0.0.1:8080"}, 403, "Origin"),
        ({**JSON, **WRITE, "Origin": "null"}, 403, "Origin"),
        ({**JSON, **WRITE, "Sec-Fetch-Site": "cross-site"}, 403, "cross-site"),
        ({**WRITE, "Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
        ({**WRITE, "Content-Type": "text/plain"}, 415, "application/json"),
        ({**JSON, **WRITE, "Origin": "http://127.0.0.1"}, 200, None),
        (
            {**JSON, **WRITE, "Origin": "http://127.0.0.1:80", "Sec-Fetch-Site": "same-origin"},
            200,
            None,
        ),
    ],
)
def test_writes_come_only_from_the_viewer_page(
    csrf_client: tuple[TestClient, str],
    method: str,
    headers: dict[str, str],
    status: int,
    why: str | None,
) -> None:
    client, run = csrf_client
    before = client.get(f"/api/boards/{run}?include_deleted=1").json()
    response = _edit(client, run, method, headers)
    assert response.status_code == status, response.text
    if why is not None:
        assert why in response.json()["detail"]
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
        assert client.get(f"/api/boards/{run}?include_deleted=1").json() == before


def test_patch_needs_a_json_content_type(
    edit_client: TestClient, edit_base: dict[str, str]
) -> None:
    response = edit_client.patch(f"/api/runs/{edit_base['a']}", content=b"{}", headers=WRITE)
    assert response.status_code == 415
    assert "send application/json" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/runs/{a}"),
        ("POST", "/api/runs/{a}"),
        ("PATCH", "/api/boards/{a}"),
        ("DELETE", "/api/boards/{a}"),
        ("POST", "/api/runs/{a}/delete"),
        ("OPTIONS", "/api/runs/{a}"),
    ],
)
def test_other_writes_stay_refused(
    csrf_client: tuple[TestClient, str], method: str, path: str
) -> None:
    client, run = csrf_client
    response = client.request(method, path.format(a=run), headers={**WRITE, **JSON})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_read_only_viewer_refuses_every_write(edit_base: dict[str, str]) -> None:
    app = create_app(edit_base["base"], read_only=True)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert c.get("/api/info").json()["read_only"] is True
        for method in ("PATCH", "DELETE", "POST"):
            response = _edit(c, edit_base["a"], method, {**WRITE, **JSON})
            assert response.status_code == 405
            assert "--read-only" in response.json()["detail"]
        assert c.get(f"/api/boards/{edit_base['a']}").json()["notes"] == ""
    with TestClient(create_app(edit_base["base"]), base_url="http://127.0.0.1") as c:
        assert c.get("/api/info").json()["read_only"] is False


# -- over real HTTP, while a training process writes the board ---------------------------------
def http(
    url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    all_headers = {**({"Content-Type": "application/json"} if body is not None else {})}
    request = urllib.request.Request(
        url, data=data, method=method, headers={**all_headers, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


TRAIN = """
import sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from kohakuboard import Board

base, gate = sys.argv[1], Path(sys.argv[2])
with Board(name="training", base_dir=base, config={{"lr": 0.1}}) as board:
    print("READY", board.path, flush=True)
    for i in range({n}):
        board.log(loss=float(i), **({{"val/acc": i / {n}}} if i % 100 == 0 else {{}}))
        if i == {n} // 2:
            print("HALF", flush=True)
            deadline = time.monotonic() + 120
            while not gate.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
print("DONE", flush=True)
"""
N_TRAIN = 20_000


def test_edits_while_a_training_process_logs_lose_nothing(
    tmp_path: Path, script: Callable[..., Script]
) -> None:
    """The writer-safe path: rename, tag, note, delete and restore a run through the real
    server while its training process and writer run; every logged value arrives, the board
    finishes normally, the edits stay."""
    base = tmp_path / "boards"
    gate = tmp_path / "go-on"
    train = script(TRAIN.format(repo=str(REPO), n=N_TRAIN), str(base), str(gate))
    board_dir = Path(train.expect("READY"))
    train.expect("HALF")
    with ViewerThread(base) as viewer:
        api = viewer.url.rstrip("/")
        origin = {**WRITE, "Origin": api}
        runs = wait_until(
            lambda: http(f"{api}/api/runs")[1]["runs"], what="the training run to be listed"
        )
        run_id = runs[0]["id"]
        assert runs[0]["status"] == "running"

        edits: list[tuple[str, str, Any]] = [
            ("PATCH", "", {"name": "live run", "tags": ["live"]}),
            ("DELETE", "", None),
            ("POST", "/restore", None),
            ("PATCH", "", {"notes": "edited while training"}),
        ]
        for method, suffix, body in edits:
            status, run = http(f"{api}/api/runs/{run_id}{suffix}", method, body, origin)
            assert status == 200, run
            assert run["status"] == "running"  # the writer is still serving the board
        status, refused = http(
            f"{api}/api/runs/{run_id}", "DELETE", None, {**WRITE, "Origin": "http://evil.example"}
        )
        assert status == 403 and "Origin" in refused["detail"]

        gate.touch()  # the second half is logged while more edits come in
        n_edits = 0
        while train.proc.poll() is None or n_edits < 3:
            n_edits += 1
            tags = ["live", f"edit-{n_edits}"]
            status, run = http(f"{api}/api/runs/{run_id}", "PATCH", {"tags": tags}, origin)
            assert status == 200 and run["tags"] == tags
        assert train.wait() == 0, train.stderr()
        train.expect("DONE")

        final = wait_until(
            lambda: (r := http(f"{api}/api/runs")[1]["runs"][0])["status"] == "finished" and r,
            what="the run to read as finished",
        )
    assert (final["name"], final["original_name"]) == ("live run", "training")
    assert final["notes"] == "edited while training" and not final["deleted"]
    assert final["tags"] == ["live", f"edit-{n_edits}"]
    assert final["metrics"]["loss"] == {
        "last": N_TRAIN - 1.0, "min": 0.0, "max": N_TRAIN - 1.0, "count": N_TRAIN,
        "last_step": N_TRAIN - 1,
    }  # fmt: skip
    with open_board(board_dir) as reader:
        values = reader.scalars("loss").column("value").to_numpy()
        assert np.array_equal(values, np.arange(N_TRAIN, dtype=np.float64))
        assert len(reader.scalars("val/acc")) == N_TRAIN // 100
        assert reader.status() == "finished"
        assert reader.info().name == "live run"
    log = board_dir / "writer.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    assert "Traceback" not in text and "ERROR" not in text, text


def test_kobo_open_read_only(csrf_client: tuple[TestClient, str], tmp_path: Path) -> None:
    """``kobo open --read-only`` reaches the server: every edit is 405 over real HTTP."""
    from typer.testing import CliRunner

    from kohakuboard.cli import app

    help_text = CliRunner().invoke(app, ["open", "--help"]).stdout
    assert "--read-only" in help_text
    client, run = csrf_client
    base = Path(client.app.state.catalog.root)  # type: ignore[attr-defined]
    with ViewerThread(base, read_only=True) as viewer:
        api = viewer.url.rstrip("/")
        assert http(f"{api}/api/info")[1]["read_only"] is True
        status, body = http(
            f"{api}/api/runs/{run}", "PATCH", {"notes": "x"}, {**WRITE, "Origin": api}
        )
        assert status == 405 and "--read-only" in body["detail"]


def test_summaries_follow_a_growing_series(tmp_path: Path) -> None:
    """Summaries are cached per series until it grows: a live run's last value moves on."""
    board = Board(name="growing", base_dir=tmp_path)
    try:
        board.log(loss=3.0)
        board.log(loss=1.0)
        with TestClient(create_app(tmp_path), base_url="http://127.0.0.1") as client:

            def summary() -> dict[str, Any]:
                (run,) = client.get("/api/runs").json()["runs"]
                return dict(run["metrics"].get("loss") or {})

            wait_until(lambda: summary().get("count") == 2, what="the first two points")
            assert summary() == {"last": 1.0, "min": 1.0, "max": 3.0, "count": 2, "last_step": 1}
            assert summary() == summary()  # served again from the cache
            board.log(loss=0.5)
            board.log(loss=7.0)
            wait_until(lambda: summary().get("count") == 4, what="the new points")
            assert summary() == {"last": 7.0, "min": 0.5, "max": 7.0, "count": 4, "last_step": 3}
    finally:
        board.finish()
