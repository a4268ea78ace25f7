"""The web app against a real ``kobo serve`` in Chromium: sign in, see the project's runs,
switch projects, sign out. (Uses the committed bundle, or KOHAKUBOARD_TEST_STATIC.)"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from kit import upload_board
from server_kit import PASSWORD, Team

from kohakuboard.server import accounts
from kohakuboard.server.db import Database
from kohakuboard.server.serve import ServeConfig, build_app
from kohakuboard.viewer.server import bind
from kohakuboard.viewer.static import STATIC_DIR

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "viewer"))
from browser_kit import ARGS, BROWSER_ONLY, CHROMIUM, Page, sync_api  # noqa: E402

pytestmark = BROWSER_ONLY
TEST_STATIC = Path(os.environ.get("KOHAKUBOARD_TEST_STATIC") or STATIC_DIR)


@pytest.fixture
def served(team: Team, local_board: Path) -> Iterator[str]:
    db = Database(team.db_url)
    try:
        accounts.grant(db, "speech", "owner", "viewer")  # owner sees two projects
    finally:
        db.close()
    config = ServeConfig(db=team.db_url, store=str(team.data / "store"), data=str(team.data))
    app = build_app(config, static_dir=TEST_STATIC)
    sock = bind("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    with httpx.Client(base_url=url) as client:
        upload_board(client, team.headers("editor"), "vision", local_board)
    yield url
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def tab(request: pytest.FixtureRequest) -> Iterator[Page]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        page = Page(browser, "server-" + request.node.name)
        yield page
        page.context.close()
        browser.close()
    # the refused API calls before signing in are what the test expects
    left = [e for e in page.errors if "401" not in e]
    assert not left, f"errors in the browser console: {left}"


def _sign_in(tab: Page, url: str, name: str, password: str) -> None:
    tab.page.goto(url + "/")
    tab.page.wait_for_selector("[data-login]")
    tab.page.fill("input[name=user]", name)
    tab.page.fill("input[name=password]", password)
    tab.page.click("button[type=submit]")


def test_sign_in_switch_project_sign_out(served: str, tab: Page, local_board: Path) -> None:
    _sign_in(tab, served, "owner", "not the password")
    tab.page.wait_for_selector("[data-login-error]")
    assert "wrong user name or password" in tab.page.inner_text("[data-login-error]")
    _sign_in(tab, served, "owner", PASSWORD)
    tab.page.wait_for_selector("[data-projects]")
    # no project chosen yet: the first of the user's projects, "speech", which has no runs
    assert tab.page.input_value("[data-project-select]") == "speech"
    cookies: list[dict[str, Any]] = tab.context.cookies()
    session = next(c for c in cookies if c["name"] == "kohakuboard-session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    tab.page.select_option("[data-project-select]", "vision")
    tab.page.wait_for_selector('text="resnet"')
    assert tab.page.input_value("[data-project-select]") == "vision"
    tab.shot("signed-in")
    # the existing pages work on the server: a chart of the synced board, the runs table
    tab.page.goto(f"{served}/?b={local_board.name}&q=^train/loss$")
    tab.ready("train/loss")
    tab.shot("chart")
    tab.page.goto(f"{served}/?p=runs")
    tab.page.wait_for_selector(".runs-table tbody tr")
    tab.page.select_option("[data-project-select]", "speech")
    tab.page.wait_for_selector("text=0 / 0 selected")  # the reloaded page, on speech
    assert tab.page.input_value("[data-project-select]") == "speech"
    assert "resnet" not in tab.page.inner_text("body")
    # the account panel: a new token is shown once; the owner sees the project's members
    tab.page.select_option("[data-project-select]", "vision")
    tab.page.wait_for_selector('text="resnet"')
    tab.page.click("[data-account-open]")
    tab.page.wait_for_selector("[data-account] >> text=viewer: viewer")  # vision's members
    tab.page.click("[data-create-token]")
    token = tab.page.inner_text("[data-new-token] code")
    assert token.startswith("kb_")
    deadline = time.monotonic() + 20
    while tab.page.locator("[data-revoke]").count() < 2:  # the list shows the new token too
        assert time.monotonic() < deadline, tab.page.inner_text("[data-account]")
        time.sleep(0.1)
    tab.shot("account")
    with httpx.Client(base_url=served) as c:
        assert (
            c.get("/api/server/me", headers={"Authorization": f"Bearer {token}"}).json()["name"]
            == "owner"
        )
    tab.page.click("[data-account] >> text=close")
    tab.page.click("[data-sign-out]")
    tab.page.wait_for_selector("[data-login]")


def _runs_of(url: str, team: Team, **params: Any) -> list[dict[str, Any]]:
    headers = {**team.headers("viewer"), "X-KohakuBoard-Project": "vision"}
    runs: list[dict[str, Any]] = httpx.get(
        url + "/api/runs", params=params, headers=headers
    ).json()["runs"]
    return runs


def _wait(check: Any, what: str) -> None:
    deadline = time.monotonic() + 20
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.1)


def test_run_edits_in_the_app_follow_the_role(
    served: str, tab: Page, local_board: Path, team: Team
) -> None:
    rid = local_board.name
    _sign_in(tab, served, "viewer", PASSWORD)
    tab.page.wait_for_selector("[data-projects]")
    tab.page.goto(f"{served}/?p=runs")
    tab.page.click(f"tr[data-run='{rid}'] .open")
    detail = tab.page.locator(f".run-detail[data-run='{rid}']")
    detail.wait_for()
    assert tab.page.locator("[data-read-only='1']").count() == 1  # a viewer edits nothing
    assert detail.locator(".rename-button").count() == 0 and detail.locator(".delete").count() == 0
    tab.page.click("[data-sign-out]")
    tab.page.wait_for_selector("[data-login]")

    _sign_in(tab, served, "owner", PASSWORD)
    tab.page.wait_for_selector("[data-projects]")
    tab.page.select_option("[data-project-select]", "vision")
    tab.page.wait_for_selector('text="resnet"')
    tab.page.goto(f"{served}/?p=runs")
    tab.page.click(f"tr[data-run='{rid}'] .open")
    detail.locator(".rename-button").click()
    detail.locator(".name-input").fill("resnet-v2")
    detail.locator(".name-input").press("Enter")
    detail.locator("h3.run-name", has_text="resnet-v2").wait_for()
    _wait(lambda: _runs_of(served, team)[0]["name"] == "resnet-v2", "renamed in the database")
    tab.shot("renamed")
    detail.locator(".delete").click()
    tab.page.locator(f".undo-toast[data-run='{rid}']").wait_for()
    _wait(lambda: _runs_of(served, team) == [], "deleted for every reader")
    (hidden,) = _runs_of(served, team, include_deleted=1)
    assert hidden["deleted"] and hidden["name"] == "resnet-v2"
