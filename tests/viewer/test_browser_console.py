"""The Console page in a real browser, and /api/console: lines of a run with captured
output, \\r progress updates collapsed, search, stream filter, ranks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_kit import BROWSER_ONLY, Page
from conftest import TEST_STATIC

from kohakuboard import Board
from kohakuboard.viewer.server import ViewerThread


@pytest.fixture(scope="module")
def console_base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    base = tmp_path_factory.mktemp("console-boards")
    board = Board(name="printer", base_dir=base, capture_console=True)
    print("epoch 1 starting")
    for i in range(20):
        print(f"\rtrain {i + 1}/20", end="", file=sys.stderr)
    print(file=sys.stderr)
    print("epoch 1 done: loss 0.25")
    board.finish(wait=True)
    return base, board.id


@pytest.fixture(scope="module")
def console_server(console_base: tuple[Path, str]) -> Any:
    with ViewerThread(console_base[0], live_interval=0.2, static_dir=TEST_STATIC) as running:
        yield running


def test_api_console(console_server: ViewerThread, console_base: tuple[Path, str]) -> None:
    board = console_base[1]
    url = console_server.url.rstrip("/") + "/api/console"
    doc = httpx.get(url, params={"board": board}).json()
    assert [(r["stream"], r["text"]) for r in doc["lines"]] == [
        ("stdout", "epoch 1 starting"),
        ("stderr", "train 20/20"),  # \r updates collapsed
        ("stdout", "epoch 1 done: loss 0.25"),
    ]
    assert doc["total"] == 3 and doc["ranks"] == [0] and not doc["more"]
    last = httpx.get(url, params={"board": board, "limit": 1}).json()
    assert last["more"] and [r["text"] for r in last["lines"]] == ["epoch 1 done: loss 0.25"]
    raw = httpx.get(url, params={"board": board, "raw": "true", "stream": "stderr"}).json()
    assert raw["lines"][0]["text"].count("\r") == 20
    found = httpx.get(url, params={"board": board, "q": "LOSS"}).json()
    assert [r["text"] for r in found["lines"]] == ["epoch 1 done: loss 0.25"]
    bad = httpx.get(url, params={"board": board, "limit": 0})
    assert bad.status_code == 422 and "limit" in bad.text


@BROWSER_ONLY[0]
@BROWSER_ONLY[1]
def test_console_page(
    console_server: ViewerThread, console_base: tuple[Path, str], tab: Page
) -> None:
    board = console_base[1]
    tab.page.goto(f"{console_server.url}?p=console&b={board}")
    tab.page.wait_for_selector("[data-console-line]")
    lines = tab.page.locator("[data-console-line] .text").all_inner_texts()
    assert lines == ["epoch 1 starting", "train 20/20", "epoch 1 done: loss 0.25"]
    tab.page.fill("[data-console-search]", "starting")
    tab.page.wait_for_function(
        "() => document.querySelectorAll('[data-console-line]').length === 1"
    )
    tab.shot("console")
