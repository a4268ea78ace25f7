"""``kobo admin`` and ``kobo serve`` through the real command line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from kohakuboard.cli import app

ROOT = Path(__file__).resolve().parents[2]


def kobo(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), input=stdin)
    return result.exit_code, result.output


def test_accounts_from_the_command_line(tmp_path: Path) -> None:
    data = ["--data", str(tmp_path)]
    code, out = kobo(
        "admin",
        "create-user",
        "ana",
        "--admin",
        "--password-stdin",
        *data,
        stdin="long enough pw\n",
    )
    assert code == 0 and "created user ana (admin)" in out
    code, out = kobo("admin", "create-user", "ana", "--no-password", *data)
    assert code == 1 and "exists already" in out
    code, out = kobo("admin", "create-user", "bo", "--password-stdin", *data, stdin="short\n")
    assert code == 1 and "accepted: 8 to" in out
    code, out = kobo("admin", "create-user", "../x", "--no-password", *data)
    assert code == 1 and "user name '../x' is not accepted" in out
    code, out = kobo("admin", "create-token", "ana", *data)
    token = out.strip().splitlines()[-1]
    assert code == 0 and token.startswith("kb_") and len(token) > 40
    assert token not in (tmp_path / "server.sqlite").read_bytes().decode("latin-1")
    assert kobo("admin", "create-project", "nlp", "--owner", "ana", *data)[0] == 0
    assert kobo("admin", "create-user", "cy", "--no-password", *data)[0] == 0
    code, out = kobo("admin", "grant", "nlp", "cy", "editor", *data)
    assert code == 0 and "cy is editor of nlp" in out
    code, out = kobo("admin", "grant", "nlp", "cy", "god", *data)
    assert code == 1 and "accepted: viewer, editor, owner" in out
    code, out = kobo("admin", "list-tokens", *data)
    assert "ana" in out and token not in out
    assert kobo("admin", "revoke-token", "1", *data)[0] == 0
    code, out = kobo("admin", "revoke-token", "1", *data)
    assert code == 1 and "no active token with id 1" in out
    code, out = kobo("admin", "migrate", *data)
    assert code == 0 and "up to date" in out


def test_serve_refuses_an_older_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kohakuboard.server import migrations

    assert kobo("admin", "migrate", "--data", str(tmp_path))[0] == 0
    n = migrations.LATEST
    step = migrations.Migration(n + 1, "next", ("CREATE TABLE later (x INTEGER)",))
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, step))
    monkeypatch.setattr(migrations, "LATEST", n + 1)
    code, out = kobo("serve", "--data", str(tmp_path), "--port", "0")
    assert code == 1 and f"schema version {n}; this kohakuboard needs {n + 1}" in out
    assert "kobo admin migrate" in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_kobo_serve_with_two_workers(tmp_path: Path) -> None:
    data = ["--data", str(tmp_path)]
    kobo("admin", "create-user", "ana", "--no-password", *data)
    token = kobo("admin", "create-token", "ana", *data)[1].strip().splitlines()[-1]
    kobo("admin", "create-project", "nlp", "--owner", "ana", *data)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kohakuboard.cli",
            "serve",
            *data,
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"{url}/api/server/me", headers={"Authorization": f"Bearer {token}"})
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, (
                    "the server did not start"
                )
                time.sleep(0.2)
        assert r.status_code == 200 and r.json()["projects"][0]["name"] == "nlp"
        for _ in range(10):  # whichever worker answers, the database decides
            assert (
                httpx.get(
                    f"{url}/api/boards", headers={"Authorization": f"Bearer {token}"}
                ).status_code
                == 200
            )
            assert httpx.get(f"{url}/api/boards").status_code == 401
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode()
    assert token not in out
