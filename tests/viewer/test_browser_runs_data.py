"""What the Runs page asks of ``/api/runs``, in a real browser: the summaries of the series it
shows (the default metric columns), not those of every series of every run; a column picked,
a filter or a sort on another series asks again for that one. Plus the API's selection.

Chromium driven by Playwright against ``kobo open`` on a real port (see browser_kit.py).
Every wait is on a state of the page, never on a fixed time.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from browser_kit import BROWSER_ONLY, Page
from conftest import TEST_STATIC
from fastapi.testclient import TestClient

from kohakuboard import Board
from kohakuboard.viewer import create_app
from kohakuboard.viewer.server import ViewerThread

N_RUNS = 3
N_METRICS = 10
READY = ".page-runs[data-state='ready']"


@pytest.fixture(scope="module")
def ten_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 finished runs of 10 series; train/m07 ends at 7 + run."""
    base = tmp_path_factory.mktemp("runs-data")
    for r in range(N_RUNS):
        with Board(name=f"run{r}", base_dir=base, config={"seed": r}) as b:
            for i in range(5):
                b.log(**{f"train/m{m:02d}": float(m + r + i - 4) for m in range(N_METRICS)})
    return base


def _answers(tab: Page) -> list[dict[str, Any]]:
    """The /api/runs answers the page received so far, with the query each asked."""
    return tab.page.evaluate("window.__runs || []")


RECORD = """(() => {
  window.__runs = []
  const orig = window.fetch
  window.fetch = async (...args) => {
    const response = await orig(...args)
    const url = new URL(String(args[0]), location.href)
    if (url.pathname === '/api/runs') {
      const doc = await response.clone().json()
      window.__runs.push({ query: url.search, summaries: doc.runs.map((r) => Object.keys(r.metrics)) })
    }
    return response
  }
})()"""


def _browser(test: Any) -> Any:
    for mark in BROWSER_ONLY:
        test = mark(test)
    return test


@_browser
def test_runs_page_asks_only_for_the_summaries_it_shows(ten_series: Path, tab: Page) -> None:
    tab.context.add_init_script(RECORD)
    with ViewerThread(ten_series, static_dir=TEST_STATIC) as viewer:
        tab.page.goto(f"{viewer.url}?p=runs")
        tab.page.wait_for_selector(READY + " .runs-table tbody tr")
        first = _answers(tab)[0]
        # the three default metric columns, not all ten series of every run
        assert all(set(s) == {"train/m00", "train/m01", "train/m02"} for s in first["summaries"])
        heads = tab.page.locator(".runs-table th[data-column]").evaluate_all(
            "els => els.map(e => e.dataset.column)"
        )
        assert [h for h in heads if h.startswith("m:")] == [
            "m:train/m00",
            "m:train/m01",
            "m:train/m02",
        ]
        # a filter on another series asks for it, and filters by its value
        tab.page.fill(".runs-filter", "train/m07>8.5")
        tab.page.wait_for_selector(".page-runs[data-runs='1']")
        asked = [parse_qs(urlparse(a["query"]).query) for a in _answers(tab)]
        assert any("train/m07" in q.get("metric", []) for q in asked), asked
        rows = tab.page.locator(".runs-table tbody .name .open").all_inner_texts()
        assert [r.strip() for r in rows] == ["run2"]  # m07 ends at 7 + run: only run2 > 8.5
        tab.page.goto("about:blank")  # no live request left to a viewer that is stopping


def test_api_runs_summarises_the_asked_series(ten_series: Path) -> None:
    with TestClient(create_app(ten_series), base_url="http://127.0.0.1") as client:
        whole = client.get("/api/runs").json()
        assert whole["summarised"] is None
        assert all(len(r["metrics"]) == N_METRICS for r in whole["runs"])
        some = client.get("/api/runs", params={"first_metrics": 2, "metric": "train/m09"}).json()
        assert some["summarised"] == ["train/m09", "train/m00", "train/m01"]
        for run, full in zip(some["runs"], whole["runs"], strict=True):
            assert list(run["metrics"]) == ["train/m09", "train/m00", "train/m01"]
            assert run["metrics"]["train/m09"] == full["metrics"]["train/m09"]
        # the names of every series and config key still come
        assert some["metric_names"] == whole["metric_names"]
        assert some["config_keys"] == whole["config_keys"] == ["seed"]
        none = client.get("/api/runs", params={"first_metrics": 0}).json()
        assert none["summarised"] == [] and all(r["metrics"] == {} for r in none["runs"])
        bad = client.get("/api/runs", params={"first_metrics": 100_000})
        assert bad.status_code == 422
        assert "first_metrics=100000 is out of range" in bad.json()["detail"]


def test_api_runs_answer_is_strict_json(ten_series: Path) -> None:
    with ViewerThread(ten_series) as viewer:
        with urllib.request.urlopen(viewer.url.rstrip("/") + "/api/runs", timeout=10) as r:
            assert r.headers["Content-Type"] == "application/json"
            doc = json.loads(r.read())
    assert len(doc["runs"]) == N_RUNS
