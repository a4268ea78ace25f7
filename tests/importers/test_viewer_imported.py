"""Imported boards open in the viewer's API like any other: TensorBoard histograms and media,
and a table without wall times (NaN wall times) charted by step and by wall time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from kohakuboard.importers import import_source
from kohakuboard.viewer import create_app


def test_imported_boards_through_the_viewer_api(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    boards = tmp_path / "boards"
    with SummaryWriter(str(tmp_path / "logs" / "run")) as writer:
        for i in range(20):
            writer.add_scalar("loss", 1 / (i + 1), i)
        writer.add_histogram("w", np.random.default_rng(0).normal(size=100), 5)
        writer.add_image("img", np.zeros((3, 4, 4), dtype=np.uint8), 5)
    (tb,) = [r for r in import_source("tensorboard", [tmp_path / "logs"], boards) if not r.empty]
    table = tmp_path / "t.csv"
    table.write_text("step,acc\n0,0.5\n1,0.75\n")
    (csv,) = import_source("csv", [table], boards)
    with TestClient(create_app(boards), base_url="http://127.0.0.1") as client:
        listed = {b["id"] for b in client.get("/api/boards").json()}
        assert {tb.board_id, csv.board_id} <= listed
        for board, metric, n in ((tb.board_id, "loss", 20), (csv.board_id, "acc", 2)):
            for x in ("step", "wall_time"):
                response = client.get(
                    "/api/series",
                    params={"board": board, "metric": metric, "x": x, "format": "json"},
                )
                assert response.status_code == 200, response.text
                (entry,) = response.json()["series"]
                assert entry["total"] == (
                    n if x == "step" or board == tb.board_id else entry["total"]
                )
        steps = client.get("/api/histograms/steps", params={"board": tb.board_id, "name": "w"})
        assert steps.status_code == 200, steps.text
        assert steps.json()["steps"] == [5]
        at = client.get("/api/histograms/at", params={"board": tb.board_id, "name": "w"})
        assert at.status_code == 200, at.text
        media = client.get("/api/media/steps", params={"board": tb.board_id, "name": "img"})
        assert media.status_code == 200, media.text
