"""What the integrations record, seen through the viewer's part-2 API: a real Lightning run and
a real transformers run (tiny models built in code, CPU) show their hyperparameters in the runs
table, their checkpoints (with the files really there) and their step-aligned gradient
histograms."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning")
pytest.importorskip("transformers")

from fastapi.testclient import TestClient  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402

from kohakuboard import list_boards, open_board  # noqa: E402
from kohakuboard.integrations.lightning import KohakuBoardLogger  # noqa: E402
from kohakuboard.integrations.transformers import KohakuBoardCallback  # noqa: E402
from kohakuboard.viewer import create_app  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hf_tiny import TinyDataset, tiny_args, tiny_model  # noqa: E402
from lit_tiny import Tiny, data  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings(
        r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"
    ),
    pytest.mark.filterwarnings("ignore::lightning.fabric.utilities.warnings.PossibleUserWarning"),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("integrated")
    base = tmp / "boards"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        logger = KohakuBoardLogger(
            base, name="lit", log_histograms="gradients", histogram_every_n_steps=2
        )
        ckpt = ModelCheckpoint(monitor="val/loss", save_top_k=1, save_last=True)
        trainer = L.Trainer(
            logger=logger,
            max_epochs=2,
            log_every_n_steps=1,
            callbacks=[ckpt],
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
            default_root_dir=tmp,
        )
        trainer.fit(Tiny(lr=0.05, hidden=6), data(8), data(4))

        from transformers import Trainer

        args = tiny_args(
            tmp / "hf-out", max_steps=6, logging_steps=2, save_strategy="steps", save_steps=3,
            save_only_model=True,
        )  # fmt: skip
        callback = KohakuBoardCallback(
            base_dir=base, name="hf", log_histograms="gradients", histogram_steps=2
        )
        Trainer(
            model=tiny_model(), args=args, train_dataset=TinyDataset(24), callbacks=[callback]
        ).train()
    finally:
        torch.set_num_threads(threads)
    with TestClient(create_app(base), base_url="http://127.0.0.1") as client:
        yield client


def _run(client: TestClient, name: str) -> dict[str, Any]:
    (run,) = [r for r in client.get("/api/runs").json()["runs"] if r["name"] == name]
    return run


def test_runs_table_has_the_hyperparameters_and_metrics(runs: TestClient) -> None:
    lit = _run(runs, "lit")
    assert lit["status"] == "finished"
    assert lit["config"]["lr"] == 0.05 and lit["config"]["hidden"] == 6
    assert {"train/loss", "val/loss"} <= set(lit["metrics"])
    assert lit["metrics"]["val/loss"]["count"] == 2  # one per epoch
    hf = _run(runs, "hf")
    assert hf["status"] == "finished"
    assert hf["config"]["learning_rate"] == 1e-3 and hf["config"]["max_steps"] == 6
    assert "train/loss" in hf["metrics"]


def test_lightning_checkpoints_are_listed_with_their_files(runs: TestClient) -> None:
    body = runs.get(f"/api/runs/{_run(runs, 'lit')['id']}/checkpoints").json()
    assert body["name"] == "checkpoints"
    rows = [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]
    assert rows and all(body["exists"])  # relative paths, resolved from the board folder
    assert sum(bool(r["is_best"]) for r in rows) == 1
    assert any(r["is_last"] for r in rows)
    assert {r["monitor"] for r in rows if r["is_best"]} == {"val/loss"}


def test_transformers_checkpoints_are_listed_with_their_files(runs: TestClient) -> None:
    body = runs.get(f"/api/runs/{_run(runs, 'hf')['id']}/checkpoints").json()
    rows = [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]
    assert [r["global_step"] for r in rows] == [3, 6]
    assert [Path(r["path"]).name for r in rows] == ["checkpoint-3", "checkpoint-6"]
    assert body["exists"] == [True, True]


@pytest.mark.parametrize("name", ["lit", "hf"])
def test_gradient_histograms_are_step_aligned_in_the_viewer(runs: TestClient, name: str) -> None:
    run = _run(runs, name)
    metrics = runs.get(f"/api/boards/{run['id']}/metrics").json()["metrics"]
    keys = [m["name"] for m in metrics if m["kind"] == "histogram"]
    assert keys and all(k.startswith("grad") for k in keys)
    steps = runs.get("/api/histograms/steps", params={"board": run["id"], "name": keys[0]}).json()
    # every second optimizer step, at the same global steps as the loss logged there
    board = next(b for b in list_boards(runs.app.state.catalog.root) if b.id == run["id"])
    with open_board(board.path) as reader:
        loss_steps = set(reader.scalars("train/loss").column("global_step").to_pylist())
    assert len(steps["global_steps"]) >= 2 and set(steps["global_steps"]) <= loss_steps
    gaps = {b - a for a, b in zip(steps["global_steps"], steps["global_steps"][1:], strict=False)}
    assert gaps == {2}
    window = runs.get(
        "/api/histograms/range", params={"board": run["id"], "name": keys[0], "bins": 16}
    ).json()
    assert window["global_steps"] == steps["global_steps"]
    assert len(window["counts"]) == len(steps["steps"]) and len(window["edges"]) == 17
    for row, count in zip(window["counts"], window["count"], strict=True):
        # rebinning keeps every gradient (counts travel rounded to 3 decimals per bin)
        assert sum(row) == pytest.approx(count, abs=0.0005 * len(row))


def test_board_list_agrees(runs: TestClient) -> None:
    names = {b["name"] for b in runs.get("/api/boards").json()}
    assert names == {"lit", "hf"}
    assert len(list_boards(runs.app.state.catalog.root)) == 2
