"""The viewer's access token (kohakuboard/viewer/auth.py): without it the API answers 401;
``?token=`` is traded once for an HttpOnly, SameSite=Strict cookie; scripts send a header;
``--no-token`` serves everyone; the token never reaches a log."""

from __future__ import annotations

import http.client
import logging
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import Boards
from fastapi.testclient import TestClient

from kohakuboard import Board
from kohakuboard.viewer import create_app
from kohakuboard.viewer.auth import new_token
from kohakuboard.viewer.errors import BadTokenError
from kohakuboard.viewer.server import ViewerThread

TOKEN = "test-token-0123456789abcdefXYZ"


@pytest.fixture
def locked(boards: Boards) -> Iterator[TestClient]:
    app = create_app(boards.base, token=TOKEN)
    with TestClient(app, base_url="http://127.0.0.1:48889", follow_redirects=False) as c:
        yield c


def test_new_tokens_are_random_and_long() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50 and all(len(t) >= 40 for t in tokens)


@pytest.mark.parametrize(
    "path", ["/api/info", "/api/boards", "/api/runs", "/api/state", "/api/events", "/api"]
)
def test_the_api_needs_the_token(locked: TestClient, path: str) -> None:
    response = locked.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="KohakuBoard"'
    detail = response.json()["detail"]
    assert "needs its access token" in detail and "?token=" in detail
    assert response.headers["x-frame-options"] == "DENY"


def test_a_browser_gets_a_page_that_says_where_the_token_is(locked: TestClient) -> None:
    response = locked.get(
        "/api/boards", headers={"accept": "text/html", "sec-fetch-mode": "navigate"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    assert "This viewer needs its access token" in response.text
    assert "the URL that <code>kobo open</code> printed" in response.text


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"Bearer {TOKEN}"},
        {"authorization": f"bearer {TOKEN}"},
        {"x-kohakuboard-token": TOKEN},
    ],
)
def test_scripts_send_the_token_in_a_header(
    locked: TestClient, boards: Boards, headers: dict[str, str]
) -> None:
    response = locked.get("/api/boards", headers=headers)
    assert response.status_code == 200
    assert {b["id"] for b in response.json()} == {boards.alpha, boards.beta}


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer wrong-token-0123456789abcdefXYZ"},
        {"authorization": f"Basic {TOKEN}"},
        {"authorization": f"Bearer {TOKEN[:-1]}"},
        {"x-kohakuboard-token": TOKEN + "x"},
        {"cookie": f"kohakuboard-token-48889={TOKEN}"},  # the cookie holds a derived value
    ],
)
def test_a_wrong_token_is_refused(locked: TestClient, headers: dict[str, str]) -> None:
    assert locked.get("/api/boards", headers=headers).status_code == 401


def test_the_url_token_is_traded_for_a_cookie(boards: Boards) -> None:
    app = create_app(boards.base, token=TOKEN)
    with TestClient(app, base_url="http://127.0.0.1:48889", follow_redirects=False) as c:
        response = c.get(f"/?b={boards.alpha}&token={TOKEN}&p=runs")
        assert response.status_code == 303
        assert response.headers["location"] == f"/?b={boards.alpha}&p=runs"  # token gone
        assert response.headers["cache-control"] == "no-store"
        cookie = response.headers["set-cookie"]
        name, value = cookie.split(";")[0].split("=", 1)
        assert name == "kohakuboard-token-48889"
        assert TOKEN not in cookie and len(value) == 64
        assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {p.strip() for p in cookie.split(";")}
        # the client now holds the cookie: the API answers
        assert c.get("/api/info").status_code == 200
        assert c.get("/api/boards").json()[0]["name"] == "alpha"


def test_the_redirect_stays_on_this_site(boards: Boards) -> None:
    # request targets sent as they are (an HTTP client library would tidy them up first)
    with ViewerThread(boards.base, token=TOKEN) as viewer:
        port = urlsplit(viewer.url).port
        for target in ["//evil.example/", "/\\evil.example/", "///evil.example", "/%2f%2fx"]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.putrequest("GET", f"{target}?token={TOKEN}", skip_host=True)
                conn.putheader("Host", f"127.0.0.1:{port}")
                conn.endheaders()
                response = conn.getresponse()
                location = response.getheader("location") or ""
            finally:
                conn.close()
            assert response.status == 303, target
            assert location.startswith("/") and not location.startswith(("//", "/\\")), target


def test_a_cookie_of_another_port_is_not_this_viewers(boards: Boards) -> None:
    # cookies are shared by all ports of a host: each viewer's cookie is named by its port
    app = create_app(boards.base, token=TOKEN)
    with TestClient(app, base_url="http://127.0.0.1:48889", follow_redirects=False) as c:
        cookie = c.get(f"/?token={TOKEN}").headers["set-cookie"].split(";")[0]
        value = cookie.split("=", 1)[1]
    with TestClient(app, base_url="http://127.0.0.1:48890") as other:
        assert other.get("/api/info", headers={"cookie": cookie}).status_code == 401
        own = {"cookie": f"kohakuboard-token-48890={value}"}
        assert other.get("/api/info", headers=own).status_code == 200


def test_a_wrong_url_token_sets_no_cookie(locked: TestClient) -> None:
    response = locked.get("/?token=not-the-token-0123456789", headers={"accept": "text/html"})
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert "not the token of this viewer" in response.text


def test_head_trades_the_token_too(locked: TestClient) -> None:
    response = locked.head(f"/?token={TOKEN}")
    assert response.status_code == 303 and "set-cookie" in response.headers


def test_the_app_shell_holds_no_data_and_loads_without_the_token(
    locked: TestClient, boards: Boards
) -> None:
    # a link followed from another site carries no SameSite=Strict cookie: the page still
    # loads, and its own requests to the API carry the cookie
    page = locked.get("/")
    assert page.status_code == 200 and '<div id="app">' in page.text
    assert "alpha" not in page.text and boards.alpha not in page.text


def test_edits_need_the_token(tmp_path: Path) -> None:
    with Board(name="edited", base_dir=tmp_path) as board:
        board.log(loss=1.0)
    edit = {"x-kohakuboard": "1", "content-type": "application/json"}
    url = f"/api/runs/{board.id}"
    with TestClient(create_app(tmp_path, token=TOKEN), base_url="http://127.0.0.1") as c:
        assert c.patch(url, headers=edit, content=b'{"notes": "x"}').status_code == 401
        assert c.delete(url, headers=edit).status_code == 401
        auth = {**edit, "authorization": f"Bearer {TOKEN}"}
        response = c.patch(url, headers=auth, content=b'{"notes": "edited with the token"}')
        assert response.status_code == 200, response.text
        assert response.json()["notes"] == "edited with the token"


def test_no_token_serves_everyone(boards: Boards) -> None:
    with TestClient(create_app(boards.base, token=None), base_url="http://127.0.0.1") as c:
        assert c.get("/api/boards").status_code == 200


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("short", "has 5 characters; accepted: 16 to 256 characters"),
        ("x" * 300, "has 300 characters; accepted: 16 to 256"),
        ("spaces are not ok here", "outside A-Z a-z 0-9 - _ . ~"),
        ("semi;colon;0123456789", "outside A-Z a-z 0-9"),
    ],
)
def test_an_unusable_token_is_refused_without_repeating_it(
    boards: Boards, token: str, message: str
) -> None:
    with pytest.raises(BadTokenError, match=re.escape(message)) as info:
        create_app(boards.base, token=token)
    assert token not in str(info.value)


def test_the_token_never_reaches_a_log(boards: Boards, caplog: pytest.LogCaptureFixture) -> None:
    token = new_token()
    caplog.set_level(logging.DEBUG)
    with ViewerThread(boards.base, token=token) as viewer:
        assert viewer.login_url == f"{viewer.url}?token={token}"
        with httpx.Client(follow_redirects=True, timeout=10) as c:
            assert c.get(viewer.login_url).status_code == 200
            assert c.get(viewer.url + "api/boards").status_code == 200  # the cookie
            assert c.get(viewer.url + "api/boards?token=wrong-0123456789abcdef").status_code == 200
            assert c.get(viewer.url + "api/info", headers=viewer.headers).status_code == 200
        with httpx.Client(timeout=10) as c:
            assert c.get(viewer.url + "api/info").status_code == 401
    # the server's side (uvicorn, kohakuboard); httpx, the client here, logs its own URLs
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name.startswith("uvicorn") for r in server_side)  # it did log
    assert not [r for r in server_side if token in r.getMessage()]


# -- the real command ------------------------------------------------------------------------
class Kobo:
    """``kobo open`` as a subprocess until it prints its URL; Ctrl+C at the end."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-W", "error", "-m", "kohakuboard.cli", "-vv", "open", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.stdout = ""
        self.stderr = ""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout += line
            found = re.search(r"KohakuBoard viewer: (http://\S+)", line)
            if found:
                self.printed = found.group(1)
                self.base = self.printed.split("?", 1)[0]
                return
        self.stop()
        raise AssertionError(f"kobo printed no URL; stderr:\n{self.stderr}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, self.stderr = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, self.stderr = self.proc.communicate()
        self.stdout += out

    def status(self, path: str, headers: dict[str, str] | None = None) -> int:
        request = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code


def test_kobo_open_prints_a_url_with_a_fresh_token(boards: Boards) -> None:
    first = Kobo(str(boards.base), "--port", "0")
    try:
        token = first.printed.split("?token=", 1)[1]
        assert len(token) >= 40
        assert first.status("api/boards") == 401
        assert first.status("api/boards", {"Authorization": f"Bearer {token}"}) == 200
        with httpx.Client(follow_redirects=True, timeout=10) as browser_like:
            assert browser_like.get(first.printed).status_code == 200
            assert browser_like.get(first.base + "api/info").status_code == 200
    finally:
        first.stop()
    assert first.proc.returncode == 0, first.stderr
    assert first.stdout.count(token) == 1  # printed once, in the URL
    assert token not in first.stderr  # -vv: every log line goes to stderr
    second = Kobo(str(boards.base), "--port", "0")
    second.stop()
    assert second.printed.split("?token=", 1)[1] != token


def test_kobo_open_takes_a_token_from_the_environment(boards: Boards) -> None:
    run = Kobo(str(boards.base), "--port", "0", env={"KOHAKUBOARD_TOKEN": TOKEN})
    try:
        assert run.printed.endswith(f"?token={TOKEN}")
        assert run.status("api/info", {"X-KohakuBoard-Token": TOKEN}) == 200
    finally:
        run.stop()


def test_kobo_open_no_token(boards: Boards) -> None:
    run = Kobo(str(boards.base), "--port", "0", "--no-token")
    try:
        assert "?token=" not in run.printed
        assert run.status("api/boards") == 200
    finally:
        run.stop()
    assert "--no-token: every user of this machine can read these boards" in run.stderr


def test_kobo_open_names_an_unusable_token(boards: Boards) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kohakuboard.cli", "open", str(boards.base), "--token", "short"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "kobo: error: the viewer token has 5 characters; accepted: 16 to 256" in done.stderr
