"""`kobo sync`, offline on this machine: a team server on loopback, a token stored with
`kobo login`, a board synced, synced again (nothing sent), grown and synced once more.

    python examples/sync_local_server.py [--data DIR]

1. `kobo admin` makes a user "ana", a project "vision" and an API token in DIR (a temporary
   folder by default), and `kobo serve` starts on 127.0.0.1.
2. `kobo login URL --token-stdin` checks the token and stores it (mode 0600) in a config
   folder of the example's own (KOHAKUBOARD_CONFIG_DIR), so `kobo sync` needs no token
   on its command line.
3. A board is written locally, synced, synced again (only a look at the server's state),
   resumed for more steps and synced from Python with `kohakuboard.sync.sync_paths`.
4. The server's state of the board shows every row once.

Nothing leaves the machine; docs/sync.md has the details.
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

from kohakuboard import Board


def kobo(*args: str, env: dict[str, str], stdin: str | None = None) -> str:
    """Run the `kobo` command line; its output (fails loudly)."""
    done = subprocess.run(
        [sys.executable, "-m", "kohakuboard.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=300,
    )
    if done.returncode != 0:
        raise SystemExit(f"kobo {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("kobo serve did not start") from None
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="The example's folder.")
    args = parser.parse_args()
    data = args.data or Path(tempfile.mkdtemp(prefix="kobo-sync-"))
    # the example's own config folder (where `kobo login` keeps tokens), for it and its children
    os.environ["KOHAKUBOARD_CONFIG_DIR"] = str(data / "client-config")
    os.environ.pop("KOHAKUBOARD_TOKEN", None)
    env = dict(os.environ)
    where = ["--data", str(data / "server")]

    # 1. accounts and the server
    kobo("admin", "create-user", "ana", "--no-password", *where, env=env)
    kobo("admin", "create-project", "vision", "--owner", "ana", *where, env=env)
    token = kobo("admin", "create-token", "ana", *where, env=env).strip().splitlines()[-1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "kohakuboard.cli", "serve", *where, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(port, server)
        print(f"kobo serve on {url}")

        # 2. log in once: the token is checked and kept in the config folder
        print(kobo("login", url, "--token-stdin", env=env, stdin=token).strip())

        # 3. a local board, synced twice with the command line
        boards = data / "boards"
        with Board(name="tiny-run", config={"lr": 0.1}, base_dir=boards) as board:
            for step in range(200):
                board.log(**{"train/loss": math.exp(-step / 50), "train/lr": 0.1})
        sync = ["sync", str(boards), "--remote", url, "--project", "vision"]
        print("first sync: ", kobo(*sync, env=env).strip())
        print("second sync:", kobo(*sync, env=env).strip())

        # ... resumed for 100 more steps, then synced from Python (the token from step 2)
        with Board(board_id=board.id, base_dir=boards) as again:
            for step in range(200, 300):
                again.log(**{"train/loss": math.exp(-step / 50)})
        from kohakuboard.sync import sync_paths

        report = sync_paths([boards], remote=url, project="vision")
        print(f"after the resume: sent {report.rows['scalars']} rows, {report.bytes_sent} bytes")

        # 4. what the server has: every row once
        from kohakuboard.sync.remote import Remote

        remote = Remote(url, token)
        state = remote.state(board.id)
        remote.close()
        assert state is not None
        metrics = state["streams"]["scalars"]["metrics"]
        for name, have in sorted(metrics.items()):
            print(f"server: {name}: {have['rows']} rows, last step {have['last_step']}")
        print(f"server: status {state['status']}, {state['next_step']} steps")
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"server stopped; everything is in {data}")


if __name__ == "__main__":
    main()
