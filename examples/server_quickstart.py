"""The team server, offline on this machine: accounts with `kobo admin`, `kobo serve` on
loopback, a board uploaded with `kobo sync`, and the runs read back through the API.

    python examples/server_quickstart.py [--data DIR]

1. `kobo admin` makes the accounts in an SQLite database in DIR (a temporary folder by default):
   alice (site admin), bob (editor of project "vision") and carol (viewer), and API tokens.
2. `kobo serve` starts on 127.0.0.1 with that database and a local store in DIR.
3. A tiny board is written locally with `Board` and uploaded by `kobo sync` with bob's token.
4. The API lists it (carol's token), bob adds a note, carol's delete is refused (viewers read
   only), alice sees the users; then the server stops.

Nothing leaves the machine; the real deployment (PostgreSQL, S3, TLS) is in docs/server.md.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from kohakuboard import Board


def kobo(*args: str, env: dict[str, str] | None = None) -> str:
    """Run the `kobo` command line; its output (fails loudly)."""
    done = subprocess.run(
        [sys.executable, "-m", "kohakuboard.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if done.returncode != 0:
        raise SystemExit(f"kobo {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="The server's folder.")
    args = parser.parse_args()
    data = args.data or Path(tempfile.mkdtemp(prefix="kobo-server-"))
    where = ["--data", str(data)]

    # 1. accounts: no default admin, no sign-up; tokens are printed once, as the last line
    kobo("admin", "create-user", "alice", "--admin", "--no-password", *where)
    kobo("admin", "create-user", "bob", "--no-password", *where)
    kobo("admin", "create-user", "carol", "--no-password", *where)
    kobo("admin", "create-project", "vision", "--owner", "alice", *where)
    kobo("admin", "grant", "vision", "bob", "editor", *where)
    kobo("admin", "grant", "vision", "carol", "viewer", *where)
    tokens = {
        who: kobo("admin", "create-token", who, "--label", "quickstart", *where).splitlines()[-1]
        for who in ("alice", "bob", "carol")
    }
    print("users alice (admin), bob (editor of vision), carol (viewer of vision); 3 tokens")

    # 2. the server, on loopback
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "kohakuboard.cli", "serve", *where, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        api = {who: {"Authorization": f"Bearer {t}"} for who, t in tokens.items()}
        deadline = time.monotonic() + 60
        while True:
            try:
                me = httpx.get(url + "/api/server/me", headers=api["carol"], timeout=5)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("kobo serve did not start") from None
                time.sleep(0.2)
        print(
            f"kobo serve on {url}; carol sees projects {[p['name'] for p in me.json()['projects']]}"
        )

        # 3. a local board, uploaded by `kobo sync` with bob's token
        boards = data / "local-boards"
        with Board(name="tiny-run", config={"lr": 0.1}, base_dir=boards) as board:
            for step in range(50):
                board.log(**{"train/loss": math.exp(-step / 10), "train/lr": 0.1})
        env = {
            **os.environ,
            "KOHAKUBOARD_TOKEN": tokens["bob"],
            "KOHAKUBOARD_CONFIG_DIR": str(data / "client-config"),
        }
        kobo("sync", str(boards / board.id), "--remote", url, "--project", "vision", env=env)

        # 4. read it back through the API (the web app at the same URL shows the same)
        vision = {"X-KohakuBoard-Project": "vision"}
        with httpx.Client(base_url=url, timeout=30) as c:
            listed = c.get("/api/boards", headers={**api["carol"], **vision}).json()
            for b in listed:
                print(f"board {b['id']}: {b['name']} {b['status']}, {b['steps']} steps")
            runs = c.get("/api/runs", headers={**api["carol"], **vision}).json()["runs"]
            loss = runs[0]["metrics"]["train/loss"]
            print(f"train/loss: last {loss['last']:.4f}, min {loss['min']:.4f}")
            edit = c.patch(
                f"/api/runs/{board.id}",
                json={"notes": "first try"},
                headers={**api["bob"], **vision},
            )
            print(f"bob sets a note: {edit.status_code} -> {edit.json()['notes']!r}")
            refused = c.delete(f"/api/runs/{board.id}", headers={**api["carol"], **vision})
            print(f"carol deletes it: {refused.status_code} ({refused.json()['detail']})")
            users = c.get("/api/server/users", headers=api["alice"]).json()
            print(f"alice lists the users: {[u['name'] for u in users]}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"server stopped; its database and store are in {data}")


if __name__ == "__main__":
    main()
