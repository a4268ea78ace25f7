"""Sign-in and the protections around it: session cookies, CSRF, throttling, revocation,
secrets never stored, Host checks, CSP, no stack traces."""

from __future__ import annotations

import sqlite3

import pytest
from fastapi.testclient import TestClient
from server_kit import PASSWORD

from kohakuboard.server import accounts
from kohakuboard.server.access import SESSION_COOKIE
from kohakuboard.server.db import Database

APP = {"X-KohakuBoard": "1"}


def _login(client: TestClient, name: str = "viewer", password: str = PASSWORD, **headers: str):
    return client.post(
        "/api/server/login", json={"name": name, "password": password}, headers={**APP, **headers}
    )


def test_login_sets_a_strict_httponly_session_cookie(client: TestClient) -> None:
    r = _login(client)
    assert r.status_code == 200 and r.json() == {"name": "viewer", "admin": False}
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    me = client.get("/api/server/me").json()
    assert me["name"] == "viewer" and me["via"] == "session"
    assert [p["name"] for p in me["projects"]] == ["vision"]
    r = client.get("/api/boards", headers={"X-KohakuBoard-Project": "vision"})
    assert r.status_code == 200
    # logging out revokes the session on the server, not only in this browser
    secret = client.cookies[SESSION_COOKIE]
    assert client.post("/api/server/logout", headers=APP).status_code == 200
    client.cookies.set(SESSION_COOKIE, secret)
    assert client.get("/api/server/me").status_code == 401


def test_cookie_changes_need_the_app_header_and_our_origin(client: TestClient) -> None:
    assert _login(client, "owner").status_code == 200
    url = "/api/server/tokens"
    assert client.post(url, json={}).status_code == 403  # no X-KohakuBoard header
    r = client.post(url, json={}, headers={**APP, "Origin": "http://evil.example"})
    assert r.status_code == 403 and "Origin" in r.json()["detail"]
    r = client.post(url, json={}, headers={**APP, "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert (
        client.post(url, json={}, headers={**APP, "Origin": "http://127.0.0.1"}).status_code == 200
    )
    # a login form on another site cannot sign a browser in either
    client.cookies.clear()
    r = client.post("/api/server/login", json={"name": "owner", "password": PASSWORD})
    assert r.status_code == 403


def test_wrong_passwords_are_throttled(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "MAX_FAILURES", 3)
    for _ in range(3):
        assert _login(client, password="wrong password").status_code == 401
    r = _login(client)  # even the right password waits now
    assert r.status_code == 429 and "too many failed logins" in r.json()["detail"]
    # unknown names fail the same way (and take as long: a dummy hash is verified)
    assert _login(client, name="ghost", password="whatever1").status_code in (401, 429)


def test_tokens_are_stored_as_hashes_and_revocable(client: TestClient, team) -> None:
    token = team.tokens["editor"]
    db = Database(team.db_url)
    try:
        tid, fresh = accounts.create_token(db, "editor", "ci")
        with sqlite3.connect(team.db_url) as raw:
            stored = [r[0] for r in raw.execute("SELECT hash FROM tokens")]
        assert token not in stored and fresh not in stored
        assert accounts.token_hash(fresh) in stored
        h = {"Authorization": f"Bearer {fresh}"}
        assert client.get("/api/server/me", headers=h).status_code == 200
        accounts.revoke_token(db, tid)
        r = client.get("/api/server/me", headers=h)
        assert r.status_code == 401 and "revoked" in r.json()["detail"]
    finally:
        db.close()
    for bad in ("Bearer ", "Bearer kb_nope", "Basic dXNlcjpwYXNz", f"Bearer {token}x"):
        assert client.get("/api/server/me", headers={"Authorization": bad}).status_code == 401


def test_host_csp_and_no_stack_traces(
    client: TestClient, team, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = team.headers("viewer")
    r = client.get("/api/server/me", headers={**h, "Host": "evil.example"})
    assert r.status_code == 400 and "Host" in r.json()["detail"]
    r = client.get("/api/server/me", headers=h)
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"

    def boom(*_a, **_k):
        raise RuntimeError("secret internals /etc/shadow")

    monkeypatch.setattr(accounts, "projects_of", boom)
    with TestClient(client.app, base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        r = c.get("/api/server/me", headers=h)
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error (logged on the server)"}
    assert "Traceback" not in r.text and "shadow" not in r.text


def test_no_default_admin_and_no_signup(tmp_path) -> None:
    from kohakuboard.server.migrations import migrate

    db = Database(str(tmp_path / "empty.sqlite"))
    try:
        migrate(db)
        with db.transaction(write=False) as tx:
            assert tx.value("SELECT COUNT(*) FROM users") == 0
    finally:
        db.close()
    from server_kit import Team, client_for

    with client_for(Team(str(tmp_path / "empty.sqlite"), tmp_path, {})) as c:
        assert _login(c, "admin", "admin").status_code == 401
        assert c.post("/api/server/users", json={"name": "me"}, headers=APP).status_code == 401


def test_api_requests_are_rate_limited_per_caller(team) -> None:
    from kohakuboard.server.serve import ServeConfig, build_app

    config = ServeConfig(
        db=team.db_url, store=str(team.data / "store"), data=str(team.data), rate_limit=1.0
    )
    with TestClient(build_app(config, static_dir=None), base_url="http://127.0.0.1") as c:
        codes = [
            c.get("/api/server/me", headers=team.headers("viewer")).status_code for _ in range(15)
        ]
        assert codes[:10] == [200] * 10  # a burst of 10 passes
        assert 429 in codes[10:]
        r = c.get("/api/server/me", headers=team.headers("viewer"))
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        # another caller has its own bucket
        assert c.get("/api/server/me", headers=team.headers("editor")).status_code == 200
