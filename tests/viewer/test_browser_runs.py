"""The Runs page in a real browser: the runs table (config and metric columns, sort, filter),
the config diff, parallel coordinates and the scatter, run edits (rename, notes, tags, soft
delete with undo) checked through the page and through ``GET /api/runs``, the checkpoints of a
run, and the read-only mode. Edits run on a copy of the demo runs, never the shared ones.
Screenshots go to test-artifacts/viewer/.
"""

from __future__ import annotations

import json
import math
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_kit import BROWSER_ONLY, Page
from conftest import TEST_STATIC
from helpers import wait_until

from kohakuboard import Board, update_annotations
from kohakuboard.viewer.server import ViewerThread

pytestmark = BROWSER_ONLY

READY = ".page-runs[data-state='ready']"


def get_json(server: ViewerThread, path: str) -> Any:
    with urllib.request.urlopen(server.url.rstrip("/") + path, timeout=10) as response:
        return json.loads(response.read())


def api_runs(server: ViewerThread, *, deleted: bool = False) -> dict[str, Any]:
    return get_json(server, f"/api/runs?include_deleted={int(deleted)}")


def run_named(server: ViewerThread, name: str) -> dict[str, Any]:
    return next(r for r in api_runs(server)["runs"] if r["name"] == name)


def open_runs(tab: Page, url: str) -> None:
    tab.page.goto(url)
    tab.page.wait_for_selector(READY + " .runs-table tbody tr")


def row_ids(tab: Page) -> list[str]:
    return tab.page.locator(".runs-table tbody tr").evaluate_all(
        "els => els.map(e => e.dataset.run)"
    )


def differing(runs: list[dict[str, Any]], keys: list[str]) -> list[str]:
    def value(run: dict[str, Any], key: str) -> str:
        return json.dumps(run["config"].get(key))

    return [k for k in keys if len({value(r, k) for r in runs}) > 1]


def last_value(run: dict[str, Any], metric: str) -> float:
    return float(run["metrics"][metric]["last"])


def test_runs_table_lists_the_demo_runs(demo_server: ViewerThread, tab: Page) -> None:
    expected = api_runs(demo_server)
    runs = expected["runs"]
    open_runs(tab, f"{demo_server.url}?p=runs")
    assert sorted(row_ids(tab)) == sorted(r["id"] for r in runs)
    names = tab.page.locator(".runs-table tbody .name .open").all_inner_texts()
    assert sorted(n.strip() for n in names) == sorted(r["name"] for r in runs)
    # default columns: the config keys that differ (at most 6), the first 3 metrics
    heads = tab.page.locator(".runs-table th[data-column]").evaluate_all(
        "els => els.map(e => e.dataset.column)"
    )
    config_cols = [h[2:] for h in heads if h.startswith("c:")]
    metric_cols = [h[2:] for h in heads if h.startswith("m:")]
    assert config_cols == differing(runs, expected["config_keys"])[:6]
    assert "lr" in config_cols and "epochs" not in config_cols  # epochs is the same everywhere
    assert metric_cols == expected["metric_names"][:3]
    # a metric cell shows the last value and says min/max on hover
    first = runs[0]
    cell = tab.page.locator(f"tr[data-run='{first['id']}'] td[data-column='m:{metric_cols[0]}']")
    assert "min" in (cell.get_attribute("title") or "")
    assert "max" in (cell.get_attribute("title") or "")
    tab.shot("table")

    # sort by a metric: ascending, then descending
    metric = metric_cols[0]
    by_metric = sorted(runs, key=lambda r: last_value(r, metric))
    tab.page.click(f"th[data-column='m:{metric}']")
    wait_until(lambda: row_ids(tab) == [r["id"] for r in by_metric], what="ascending order")
    tab.page.click(f"th[data-column='m:{metric}']")
    wait_until(lambda: row_ids(tab) == [r["id"] for r in reversed(by_metric)], what="descending")
    wait_until(lambda: tab.query().get("rs") == [f"-m:{metric}"], what="the sort in the URL")

    # the column pickers add and remove columns
    tab.page.click(".column-picker[data-picker='config'] summary")
    tab.page.check(".column-picker[data-picker='config'] input[data-option='epochs']")
    tab.page.wait_for_selector(".runs-table th[data-column='c:epochs']")
    tab.page.click(".column-picker[data-picker='config'] summary")
    wait_until(lambda: "epochs" in tab.query().get("rcc", [""])[0], what="the columns in the URL")
    # the picked columns and an open run survive a reload (they are in the URL)
    tab.page.click(f"tr[data-run='{first['id']}'] .name .open")
    wait_until(lambda: tab.query().get("run") == [first["id"]], what="the open run in the URL")
    tab.page.reload()
    tab.page.wait_for_selector(".runs-table th[data-column='c:epochs']")
    tab.page.wait_for_selector(f".run-detail[data-run='{first['id']}']")

    # the regex filter over names (tags and notes too)
    tab.page.fill(".runs-filter", "^wide$")
    wait_until(lambda: len(row_ids(tab)) == 1, what="one run left")
    wait_until(lambda: tab.query().get("rf") == ["^wide$"], what="the filter in the URL")

    # the checkbox is the selection shared with the list on the left
    wide = run_named(demo_server, "wide")["id"]
    box = tab.page.locator(f"tr[data-run='{wide}'] .check input")
    before = box.is_checked()
    box.click()
    wait_until(lambda: (wide in tab.query().get("b", [""])[0]) != before, what="selection")
    selected = tab.page.locator(f".board[data-board='{wide}']").get_attribute("class") or ""
    assert ("selected" in selected) != before


def test_config_diff_shows_only_differing_keys(demo_server: ViewerThread, tab: Page) -> None:
    expected = api_runs(demo_server)
    pair = [r for r in expected["runs"] if r["name"] in ("baseline", "high-lr")]
    ids = ",".join(r["id"] for r in pair)
    open_runs(tab, f"{demo_server.url}?p=runs&b={ids}")
    tab.page.wait_for_selector(".config-diff tr[data-key]")
    keys = tab.page.locator(".config-diff tr[data-key]").evaluate_all(
        "els => els.map(e => e.dataset.key)"
    )
    assert keys == differing(pair, expected["config_keys"])
    assert set(keys) == {"lr", "dropout", "batch_size"}
    row = tab.page.locator(".config-diff tr[data-key='lr'] td").all_inner_texts()
    assert row == ["lr", "0.1", "0.4"]
    tab.shot("config-diff")
    tab.page.check(".config-diff .show-all")
    present = [k for k in expected["config_keys"] if any(k in r["config"] for r in pair)]
    tab.page.wait_for_function(
        f"() => document.querySelectorAll('.config-diff tr[data-key]').length === {len(present)}"
    )
    assert tab.page.locator(".config-diff tr.same[data-key='epochs']").count() == 1


def test_parallel_coordinates_and_scatter(demo_server: ViewerThread, tab: Page) -> None:
    runs = api_runs(demo_server)["runs"]
    open_runs(tab, f"{demo_server.url}?p=runs&rm=val/acc&rx=lr")
    lines = tab.page.locator(".parcoords polyline.line")
    assert lines.count() == len(runs)
    axes = int(tab.page.get_attribute(".parcoords", "data-axes") or 0)
    configs = tab.page.locator(".runs-table th[data-column^='c:']").count()
    assert axes == configs + 1  # the chosen config columns and the metric
    colors = lines.evaluate_all("els => els.map(e => e.getAttribute('stroke'))")
    assert len(set(colors)) == len(runs)
    points = tab.page.locator(".scatter circle.point")
    assert points.count() == len(runs)
    # x follows lr, y follows the last val/acc
    xs = {p.get_attribute("data-run"): float(p.get_attribute("cx") or 0) for p in points.all()}
    ys = {p.get_attribute("data-run"): float(p.get_attribute("cy") or 0) for p in points.all()}
    by_lr = sorted(runs, key=lambda r: r["config"]["lr"])
    assert [xs[r["id"]] for r in by_lr] == sorted(xs.values())
    by_acc = sorted(runs, key=lambda r: last_value(r, "val/acc"))
    assert [ys[r["id"]] for r in by_acc] == sorted(ys.values(), reverse=True)  # SVG y grows down
    # hovering a line highlights the run everywhere
    target = runs[1]["id"]
    tab.page.locator(f".parcoords polyline[data-run='{target}']").dispatch_event("mouseenter")
    tab.page.wait_for_selector(f".runs-table tr.hovered[data-run='{target}']")
    assert tab.page.locator(f".scatter circle.hovered[data-run='{target}']").count() == 1
    tab.page.locator(".plots").scroll_into_view_if_needed()
    tab.shot("plots")


def test_plot_axes_have_round_ticks_and_a_log_scale(demo_server: ViewerThread, tab: Page) -> None:
    runs = api_runs(demo_server)["runs"]
    open_runs(tab, f"{demo_server.url}?p=runs&rm=val/acc&rx=lr")

    def x_ticks() -> list[str]:
        return [t.strip() for t in tab.page.locator(".scatter text.x-tick").all_text_contents()]

    def x_of_lr() -> dict[float, float]:
        by_id = {r["id"]: r["config"]["lr"] for r in runs}
        points = tab.page.locator(".scatter circle.point").all()
        return {
            by_id[p.get_attribute("data-run")]: float(p.get_attribute("cx") or 0) for p in points
        }

    # the demo's learning rates run from 0.02 to 0.4: a linear axis over round bounds
    assert x_ticks() == ["0", "0.1", "0.2", "0.3", "0.4"]
    # the axis can be drawn before every run's point is (a loaded machine showed it)
    wait_until(
        lambda: tab.page.locator(".scatter circle.point").count() == len(runs),
        what="a point per run",
    )
    x = x_of_lr()
    assert x[0.4] - x[0.2] == pytest.approx(2 * (x[0.2] - x[0.1]), abs=1)
    tab.page.locator(".scatter input.log-x").check()
    wait_until(lambda: tab.query().get("rlg") == ["c:lr"], what="rlg=c:lr in the URL")
    wait_until(lambda: x_ticks() == ["0.02", "0.05", "0.1", "0.2", "0.5"], what="log ticks")
    x = x_of_lr()
    # equal ratios are equal distances on a log axis
    assert x[0.4] - x[0.2] == pytest.approx(x[0.2] - x[0.1], abs=0.5)
    assert x[0.1] - x[0.05] == pytest.approx(x[0.2] - x[0.1], abs=0.5)
    # the parallel coordinates share the choice, and toggle it by a click on an axis name
    lr_axis = tab.page.locator(".parcoords .axis[data-axis='lr']")
    assert lr_axis.locator(".scale-mark").count() == 1
    tab.page.locator(".parcoords .axis[data-axis='width'] .axis-name").click()
    wait_until(lambda: tab.query().get("rlg") == ["c:lr,c:width"], what="rlg with width")
    assert tab.page.locator(".parcoords .axis[data-axis='width'] .scale-mark").count() == 1
    # a run with dropout 0 leaves no log scale for dropout: the axis stays linear and says why
    dropout = tab.page.locator(".parcoords .axis[data-axis='dropout']")
    dropout.locator(".axis-name").click()
    wait_until(lambda: "c:dropout" in (tab.query().get("rlg") or [""])[0], what="rlg with dropout")
    assert dropout.locator(".scale-mark").count() == 0
    assert "positive" in (dropout.locator(".axis-name title").text_content() or "")
    lr_axis.locator(".axis-name").click()
    wait_until(lambda: tab.query().get("rlg") == ["c:width,c:dropout"], what="lr back to linear")
    wait_until(lambda: x_ticks()[0] == "0", what="linear x ticks again")
    tab.page.locator(".plots").scroll_into_view_if_needed()
    tab.shot("log-axes")


def test_metric_columns_show_last_min_or_max(demo_server: ViewerThread, tab: Page) -> None:
    runs = api_runs(demo_server)["runs"]
    open_runs(tab, f"{demo_server.url}?p=runs&rmc=train/loss&rm=train/loss&rs=m:train/loss")
    for kind in ("min", "max", "last"):
        tab.page.select_option(".pick-summary", kind)
        wait_until(
            lambda kind=kind: tab.query().get("rv", ["last"]) == [kind],
            what=f"rv={kind} in the URL",
        )
        # the column, its order and the metric axis all follow the chosen summary
        by_value = sorted(runs, key=lambda r, k=kind: float(r["metrics"]["train/loss"][k]))
        wait_until(
            lambda b=by_value: row_ids(tab) == [r["id"] for r in b], what=f"sorted by {kind}"
        )
        first = by_value[0]
        cell = tab.page.locator(f"tr[data-run='{first['id']}'] td[data-column='m:train/loss']")
        shown = float(cell.inner_text().strip())
        assert shown == pytest.approx(float(first["metrics"]["train/loss"][kind]), rel=1e-3)
        axis = tab.page.locator(".parcoords .axis.metric .axis-name").text_content() or ""
        assert f"({kind})" in axis


def test_runs_page_in_dark_mode(demo_server: ViewerThread, tab: Page) -> None:
    open_runs(tab, f"{demo_server.url}?p=runs&theme=dark")
    assert tab.page.get_attribute("html", "data-theme") == "dark"
    tab.page.wait_for_selector(".parcoords polyline.line")
    axis = tab.page.locator(".parcoords .axis text").first
    assert axis.evaluate("e => getComputedStyle(e).fill") == "rgb(230, 233, 239)"  # dark --text
    tab.shot("dark")
    tab.page.locator(".plots").scroll_into_view_if_needed()
    tab.shot("dark-plots")


def test_checkpoints_of_a_run(demo_server: ViewerThread, tab: Page) -> None:
    run = run_named(demo_server, "wide")
    expected = get_json(demo_server, f"/api/runs/{run['id']}/checkpoints")
    open_runs(tab, f"{demo_server.url}?p=runs")
    tab.page.click(f"tr[data-run='{run['id']}'] .open")
    section = tab.page.locator(".run-detail .checkpoints[data-state='ready']")
    section.wait_for()
    rows = section.locator("tbody tr")
    assert rows.count() == len(expected["rows"]) == 6  # one per epoch
    exists = rows.evaluate_all("els => els.map(e => e.dataset.exists === '1')")
    assert exists == expected["exists"]
    assert exists[-1] and not any(exists[:-1])  # only the last file is kept on disk
    assert section.locator("tr[data-exists='0'] .mark.gone").count() == 5
    marks = rows.evaluate_all("els => els.map(e => e.dataset.marks)")
    assert "last" in marks[-1].split()
    assert sum("best" in m.split() for m in marks) == 1
    assert section.locator("tbody tr").first.inner_text().count("epoch=0.ckpt") == 1
    section.scroll_into_view_if_needed()
    tab.shot("checkpoints")


# -- edits, on a copy of the demo runs ---------------------------------------------------------
@pytest.fixture
def edit_server(demo_base: Path, tmp_path: Path) -> Iterator[ViewerThread]:
    base = tmp_path / "runs"
    shutil.copytree(demo_base, base)
    with ViewerThread(base, live_interval=0.2, static_dir=TEST_STATIC) as running:
        yield running


def board_names(tab: Page) -> list[str]:
    return [n.strip() for n in tab.page.locator(".board-name .label").all_inner_texts()]


def test_rename_notes_tags(edit_server: ViewerThread, tab: Page) -> None:
    run = run_named(edit_server, "baseline")
    rid = run["id"]
    open_runs(tab, f"{edit_server.url}?p=runs")
    tab.page.click(f"tr[data-run='{rid}'] .open")
    detail = tab.page.locator(f".run-detail[data-run='{rid}']")

    detail.locator(".rename-button").click()
    detail.locator(".name-input").fill("baseline-v2")
    detail.locator(".name-input").press("Enter")
    detail.locator("h3.run-name", has_text="baseline-v2").wait_for()
    wait_until(lambda: run_named(edit_server, "baseline-v2")["id"] == rid, what="renamed")
    assert run_named(edit_server, "baseline-v2")["original_name"] == "baseline"
    wait_until(lambda: "baseline-v2" in board_names(tab), what="the list on the left renamed")

    detail.locator(".notes-input").fill("lr too high?\nsecond line")
    detail.locator(".save-notes").click()
    wait_until(
        lambda: run_named(edit_server, "baseline-v2")["notes"] == "lr too high?\nsecond line",
        what="notes saved",
    )
    detail.locator(".tag-input").fill("keep, sweep")
    detail.locator(".tag-input").press("Enter")
    detail.locator(".chip[data-tag='sweep']").wait_for()
    wait_until(
        lambda: run_named(edit_server, "baseline-v2")["tags"] == ["keep", "sweep"], what="tags"
    )
    detail.locator(".chip[data-tag='keep'] .remove-tag").click()
    wait_until(lambda: run_named(edit_server, "baseline-v2")["tags"] == ["sweep"], what="untag")
    chips = tab.page.locator(f"tr[data-run='{rid}'] .tags .chip")
    wait_until(lambda: chips.all_inner_texts() == ["sweep"], what="the tags in the table")
    tab.shot("edited")

    # the filter matches tags and notes
    tab.page.fill(".runs-filter", "sweep")
    wait_until(lambda: row_ids(tab) == [rid], what="filtered by tag")
    tab.page.fill(".runs-filter", "too high")
    wait_until(lambda: row_ids(tab) == [rid], what="filtered by notes")

    # it all survives a reload
    tab.page.reload()
    tab.page.wait_for_selector(READY + f" tr[data-run='{rid}']")
    detail.wait_for()  # still open: the open run is in the URL
    assert detail.locator(".notes-input").input_value() == "lr too high?\nsecond line"
    assert detail.locator("h3.run-name").inner_text() == "baseline-v2"


def test_delete_with_undo_and_restore(edit_server: ViewerThread, tab: Page) -> None:
    run = run_named(edit_server, "wide")
    rid = run["id"]
    open_runs(tab, f"{edit_server.url}?p=runs&b={rid}")
    tab.page.click(f"tr[data-run='{rid}'] .open")
    tab.page.click(f".run-detail[data-run='{rid}'] .delete")
    toast = tab.page.locator(f".undo-toast[data-run='{rid}']")
    toast.wait_for()
    assert "Run wide deleted." in toast.inner_text()
    tab.shot("deleted-toast")
    listed = api_runs(edit_server, deleted=True)["runs"]
    assert next(r for r in listed if r["id"] == rid)["deleted"] is True
    assert rid not in [r["id"] for r in api_runs(edit_server)["runs"]]
    wait_until(lambda: "wide" not in board_names(tab), what="gone from the list on the left")
    assert rid not in row_ids(tab)
    wait_until(lambda: "b" not in tab.query(), what="no longer selected")

    toast.locator(".undo").click()
    wait_until(lambda: rid in [r["id"] for r in api_runs(edit_server)["runs"]], what="undone")
    wait_until(lambda: "wide" in board_names(tab), what="back in the list on the left")
    tab.page.wait_for_selector(f".runs-table tr[data-run='{rid}']:not(.deleted)")
    wait_until(lambda: tab.query().get("b") == [rid], what="selected again")
    assert toast.count() == 0

    # deleted runs are listed greyed with a Restore button when asked for
    tab.page.click(f"tr[data-run='{rid}'] .open")
    tab.page.click(f".run-detail[data-run='{rid}'] .delete")
    wait_until(lambda: rid not in row_ids(tab), what="hidden")
    tab.page.check(".show-deleted input")
    row = tab.page.locator(f".runs-table tr.deleted[data-run='{rid}']")
    row.wait_for()
    wait_until(lambda: tab.query().get("rd") == ["1"], what="show deleted in the URL")
    tab.shot("show-deleted")
    row.locator(".restore").click()
    tab.page.wait_for_selector(f".runs-table tr[data-run='{rid}']:not(.deleted)")
    assert next(r for r in api_runs(edit_server)["runs"] if r["id"] == rid)["deleted"] is False


def test_read_only_hides_the_edit_controls(demo_base: Path, tab: Page) -> None:
    with ViewerThread(demo_base, read_only=True, static_dir=TEST_STATIC) as server:
        run = run_named(server, "wide")
        open_runs(tab, f"{server.url}?p=runs")
        tab.page.wait_for_selector(".page-runs[data-read-only='1']")
        tab.page.click(f"tr[data-run='{run['id']}'] .open")
        detail = tab.page.locator(".run-detail")
        detail.locator(".checkpoints[data-state='ready']").wait_for()
        for control in (".rename-button", ".delete", ".save-notes", ".tag-input", ".remove-tag"):
            assert detail.locator(control).count() == 0, control
        notes = detail.locator(".notes-input")
        assert notes.get_attribute("readonly") is not None
        # and it does not look like an input: no resize grip, a dashed border, "no notes"
        style = notes.evaluate("e => [getComputedStyle(e).resize, getComputedStyle(e).borderStyle]")
        assert style == ["none", "dashed"]
        assert notes.get_attribute("placeholder") == "no notes"
        tab.shot("read-only")
        tab.page.goto("about:blank")  # leave before this server stops (no refused reconnects)


def test_repeated_tags_in_one_entry_are_added_once(edit_server: ViewerThread, tab: Page) -> None:
    rid = run_named(edit_server, "baseline")["id"]
    open_runs(tab, f"{edit_server.url}?p=runs&run={rid}")
    detail = tab.page.locator(f".run-detail[data-run='{rid}']")
    detail.locator(".tag-input").fill("seed, seed ,other")
    detail.locator(".tag-input").press("Enter")
    detail.locator(".chip[data-tag='other']").wait_for()
    wait_until(lambda: run_named(edit_server, "baseline")["tags"] == ["seed", "other"], what="tags")
    assert detail.locator(".write-error").count() == 0


# -- awkward sweeps: a diverged run, many categories, long names and values --------------------
N_CATEGORIES = 14
N_PARAMS = 30
LONG_NAME = "long-run-name-" * 12


@pytest.fixture(scope="module")
def awkward_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("awkward-runs")
    for i in range(N_CATEGORIES):
        config = {"lr": 0.01 * (i + 1), "dataset": f"dataset-{i:02d}", "note": f"{i}" + "x" * 300}
        config.update({f"param_{k:02d}": (i * k) % 7 + k for k in range(N_PARAMS)})
        name = LONG_NAME if i == 0 else f"run-{i:02d}"
        with Board(name=name, config=config, base_dir=base) as board:
            for step in range(3):
                # run-03 diverged: its loss is NaN from the start
                board.log(**{"val/loss": math.nan if i == 3 else (i + 1) / (step + 1)})
        if i == 0:
            update_annotations(board.path, tags=[f"tag-{t:02d}-with-some-words" for t in range(12)])
    return base


@pytest.fixture
def awkward_server(awkward_base: Path) -> Iterator[ViewerThread]:
    with ViewerThread(awkward_base, live_interval=0.2, static_dir=TEST_STATIC) as running:
        yield running


def tick_labels(tab: Page, selector: str) -> list[str]:
    return [t.strip() for t in tab.page.locator(selector).all_text_contents()]


def test_a_diverged_run_keeps_the_metric_axis_numeric(
    awkward_server: ViewerThread, tab: Page
) -> None:
    diverged = run_named(awkward_server, "run-03")["id"]
    open_runs(tab, f"{awkward_server.url}?p=runs&rm=val/loss&rx=lr")
    metric_axis = ".parcoords .axis.metric"
    # last losses 1/3 .. 14/3 over round bounds (a NaN loss must not turn the others into
    # evenly spaced categories)
    labels = tick_labels(tab, metric_axis + " g:not(.missing-mark) > .tick-label")
    assert [float(t) for t in labels] == [0, 2, 4, 6]
    # the diverged run crosses the axis at the no-value mark
    assert tab.page.locator(metric_axis + " .missing-mark").count() == 1
    assert "NaN" not in tick_labels(tab, ".scatter text.y-tick")
    assert tab.page.locator(f".scatter circle.point[data-run='{diverged}']").count() == 0
    assert tab.page.locator(".scatter circle.point").count() == N_CATEGORIES - 1
    tab.page.locator(".plots").scroll_into_view_if_needed()
    tab.shot("diverged-run")


def test_many_categories_do_not_print_over_each_other(
    awkward_server: ViewerThread, tab: Page
) -> None:
    open_runs(tab, f"{awkward_server.url}?p=runs&rcc=dataset,lr&rm=val/loss&rx=dataset")
    tab.page.locator(".plots").scroll_into_view_if_needed()
    axis = tick_labels(tab, ".parcoords .axis[data-axis='dataset'] .tick-label")
    assert 2 <= len(axis) < N_CATEGORIES and axis[0] == "dataset-00"
    # a category axis has no log scale: a click on its name changes nothing
    name = tab.page.locator(".parcoords .axis[data-axis='dataset'] .axis-name")
    name.click()
    tab.page.locator(".parcoords .axis[data-axis='lr'] .axis-name").click()
    wait_until(lambda: tab.query().get("rlg") == ["c:lr"], what="rlg=c:lr, without dataset")
    assert "categories" in (name.locator("title").text_content() or "")
    tab.page.locator(".parcoords .axis[data-axis='lr'] .axis-name").click()
    wait_until(lambda: "rlg" not in tab.query(), what="no log axes")
    boxes = tab.page.locator(".scatter text.x-tick").evaluate_all(
        "els => els.map(e => { const b = e.getBoundingClientRect(); return [b.left, b.right] })"
    )
    assert 2 <= len(boxes) < N_CATEGORIES
    for (_, right), (left, _) in zip(boxes, boxes[1:], strict=False):
        assert right <= left, f"x labels overlap: {boxes}"
    tab.shot("many-categories")


def test_long_names_and_values_leave_the_other_columns_in_view(
    awkward_server: ViewerThread, tab: Page
) -> None:
    ids = [r["id"] for r in api_runs(awkward_server)["runs"]][:5]  # the long name among them
    open_runs(tab, f"{awkward_server.url}?p=runs&rcc=note,lr&b={','.join(ids)}")
    view_width = tab.page.evaluate("innerWidth")
    # neither the long name, the long value nor the run's 12 tags push these out of view
    for column in ("status", "tags", "c:note", "c:lr"):
        right = tab.page.locator(f".runs-table th[data-column='{column}']").evaluate(
            "e => e.getBoundingClientRect().right"
        )
        assert right <= view_width, f"{column} is pushed out of view ({right} > {view_width})"
    name = tab.page.locator(f".runs-table .open[title='details of {LONG_NAME}']")
    assert name.inner_text() == LONG_NAME  # cut by CSS only: the text is all there
    # the config diff keeps every selected run in view too
    heads = tab.page.locator(".config-diff th[data-run]")
    wait_until(lambda: heads.count() == 5, what="the five selected runs in the config diff")
    panel = tab.page.locator(".config-diff").evaluate("e => e.getBoundingClientRect().right")
    edges = heads.evaluate_all(
        "els => els.map(e => { const b = e.getBoundingClientRect(); return [b.left, b.right] })"
    )
    assert edges[2][1] <= panel, f"a long value pushes the third run out of view: {edges}"
    tab.shot("long-names")


def test_the_steps_column_counts_the_log_calls(awkward_server: ViewerThread, tab: Page) -> None:
    rid = run_named(awkward_server, "run-05")["id"]
    open_runs(tab, f"{awkward_server.url}?p=runs&rmc=val/loss")
    # three log() calls: steps 0, 1, 2, and the metric's last value is at step 2
    assert tab.page.locator("th[data-column='steps']").inner_text().strip() == "steps"
    row = tab.page.locator(f"tr[data-run='{rid}']")
    assert row.locator("td").nth(4).inner_text() == "3"
    assert "(step 2)" in (row.locator("td[data-column='m:val/loss']").get_attribute("title") or "")


def test_thirty_axes_keep_their_names_apart(awkward_server: ViewerThread, tab: Page) -> None:
    params = ",".join(f"param_{k:02d}" for k in range(N_PARAMS))
    open_runs(tab, f"{awkward_server.url}?p=runs&rcc={params}&rm=val/loss")
    plot = tab.page.locator(".parcoords")
    assert plot.get_attribute("data-axes") == str(N_PARAMS + 1)
    boxes = plot.locator(".axis-name").evaluate_all(
        "els => els.map(e => { const b = e.getBoundingClientRect(); return [b.left, b.right] })"
    )
    for (_, right), (left, _) in zip(boxes, boxes[1:], strict=False):
        assert right <= left, f"axis names overlap: {boxes}"
    # the plot is wider than its panel and scrolls sideways to its last axis
    scroll = plot.locator(".plot-scroll")
    assert scroll.evaluate("e => e.scrollWidth > e.clientWidth")
    scroll.evaluate("e => { e.scrollLeft = e.scrollWidth }")
    plot.scroll_into_view_if_needed()
    tab.shot("thirty-axes")


def test_the_global_step_column_shows_the_training_step_reached(tmp_path: Path, tab: Page) -> None:
    """Runs that logged 3 times each but trained to different global steps: the column shows
    the training step (what a Lightning or transformers run reports), and sorts by it."""
    base = tmp_path / "trained"
    reached = {"short": 40, "long": 4000, "middle": 700}
    for name, last in reached.items():
        with Board(name=name, base_dir=base) as board:
            for k in range(3):
                board.log(loss=1.0 / (k + 1), global_step=last * k // 2)
    with ViewerThread(base, live_interval=0.2, static_dir=TEST_STATIC) as viewer:
        open_runs(tab, f"{viewer.url}?p=runs&rs=-global_step")
        runs = {r["id"]: r for r in api_runs(viewer)["runs"]}
        assert (
            tab.page.locator("th[data-column='global_step']")
            .inner_text()
            .strip()
            .startswith("global step")
        )
        by_reached = sorted(runs.values(), key=lambda r: -reached[r["name"]])
        wait_until(lambda: row_ids(tab) == [r["id"] for r in by_reached], what="sorted by it")
        for rid, run in runs.items():
            cell = tab.page.locator(f"tr[data-run='{rid}'] td[data-column='global_step']")
            shown = cell.inner_text().strip()  # digit groups: 4,000
            assert shown == f"{reached[run['name']]:,}" == f"{run['global_step']:,}"
            steps = tab.page.locator(f"tr[data-run='{rid}'] td").nth(4).inner_text().strip()
            assert steps == "3"  # the log() calls, next to it
        tab.shot("global-step")
        tab.page.goto("about:blank")  # leave before the server stops
