"""Boards with known data for the viewer tests, an in-process client and a real server."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from kohakuboard import Board, Histogram, Media, Table
from kohakuboard.viewer import create_app
from kohakuboard.viewer.demo import write_demo
from kohakuboard.viewer.server import ViewerThread
from kohakuboard.viewer.static import STATIC_DIR

# the viewer tests import viewer_helpers from this folder (pytest runs with importlib mode)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_kit import ARGS, CHROMIUM, Page, sync_api  # noqa: E402

# The web app the browser tests load: the committed bundle, or a scratch build
# (KB_UI_OUT=/tmp/x npm run build; KOHAKUBOARD_TEST_STATIC=/tmp/x pytest ...).
TEST_STATIC = Path(os.environ.get("KOHAKUBOARD_TEST_STATIC") or STATIC_DIR)

N_ALPHA = 3000
SPIKES = {1234: 50.0, 2500: -20.0}  # alpha train/loss
NONFINITE = {100: math.nan, 200: math.inf, 300: -math.inf}


@dataclass(frozen=True)
class Boards:
    base: Path
    alpha: str  # id
    beta: str
    alpha_loss: np.ndarray  # values of train/loss by step
    alpha_tokens: np.ndarray


def alpha_loss_values() -> np.ndarray:
    rng = np.random.default_rng(7)
    steps = np.arange(N_ALPHA)
    values = 2.0 * np.exp(-steps / 800) + 0.05 * rng.standard_normal(N_ALPHA)
    for step, value in {**SPIKES, **NONFINITE}.items():
        values[step] = value
    return values


@pytest.fixture(scope="session")
def boards(tmp_path_factory: pytest.TempPathFactory) -> Boards:
    base = tmp_path_factory.mktemp("viewer-boards")
    loss = alpha_loss_values()
    tokens = np.cumsum(np.full(N_ALPHA, 512.0))
    config = {"lr": 0.001, "opt": {"name": "adam", "betas": [0.9, 0.999]}, "note": "alpha run"}
    with Board(name="alpha", config=config, base_dir=base) as alpha:
        for i in range(N_ALPHA):
            values = {"train/loss": float(loss[i]), "train/tokens": float(tokens[i])}
            if i % 100 == 99:
                values["val/acc"] = i / N_ALPHA
            alpha.log(**values)
            if i % 10 == 9:
                alpha.step()
        alpha.log(
            **{
                "samples/image": Media(np.zeros((8, 8, 3))),
                "val/table": Table([[1, "a"]], columns=["n", "s"]),
                "weights/w": Histogram(np.arange(100.0)),
            }
        )
    with Board(name="beta", config={"lr": 0.1}, base_dir=base, project="other") as beta:
        for i in range(500):
            beta.log(**{"train/loss": 1.0 / (i + 1), "train/const": 1.0, "acc": i / 500})
    return Boards(base, alpha.id, beta.id, loss, tokens)


@pytest.fixture(scope="session")
def client(boards: Boards) -> Iterator[TestClient]:
    app = create_app(boards.base)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture
def live_base(tmp_path: Path) -> Path:
    base = tmp_path / "live-boards"
    base.mkdir()
    return base


@pytest.fixture
def server(boards: Boards) -> Iterator[ViewerThread]:
    """``kobo open`` on the shared boards, on a free port, in a background thread."""
    with ViewerThread(boards.base, live_interval=0.2, static_dir=TEST_STATIC) as running:
        yield running


@pytest.fixture(scope="session")
def demo_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The finished runs of ``kobo demo`` (fewer steps), shared by the page tests."""
    base = tmp_path_factory.mktemp("demo-boards")
    write_demo(base, steps_per_epoch=30, epochs=6)
    return base


@pytest.fixture(scope="session")
def demo_client(demo_base: Path) -> Iterator[TestClient]:
    with TestClient(create_app(demo_base), base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture
def demo_server(demo_base: Path) -> Iterator[ViewerThread]:
    """``kobo open`` on the demo runs, serving the web app under test."""
    with ViewerThread(demo_base, live_interval=0.2, static_dir=TEST_STATIC) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def tab(browser: Any, request: pytest.FixtureRequest) -> Iterator[Page]:
    page = Page(browser, request.node.name.replace("[", "-").rstrip("]"))
    yield page
    page.context.close()
    assert not page.errors, f"errors in the browser console: {page.errors}"
