"""Live sync, offline on this machine: `Board(remote=URL, project=P)` sends a run to a team
server while it trains; a run whose server is down trains just as fast and goes up later.

    python examples/live_sync.py [--data DIR]

1. `kobo admin` makes a user "ana", a project "vision" and an API token in DIR (a temporary
   folder by default); `kobo serve` starts on 127.0.0.1. The token goes in KOHAKUBOARD_TOKEN
   (`kobo login` works too), never on a command line.
2. A run logs with `remote=`: the server's chart API shows its points while it still runs
   (the board's writer process starts the uploader; the training loop does no network work).
3. A second run points at a port where nothing listens: it logs and finishes as usual, its
   data waits in the board folder, and `kobo sync` sends it once the server is reachable.

Nothing leaves the machine; docs/sync.md#live-sync-boardremote has the details.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from kohakuboard import Board


def kobo(*args: str) -> str:
    """Run the `kobo` command line; its output (fails loudly)."""
    done = subprocess.run(
        [sys.executable, "-m", "kohakuboard.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise SystemExit(f"kobo {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def points_on_server(port: int, token: str, board: str, metric: str) -> int:
    """How many points of one series the server's chart API has (0: none yet)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        query = urlencode({"board": board, "metric": metric, "format": "json", "points": 10})
        headers = {"Authorization": f"Bearer {token}", "X-KohakuBoard-Project": "vision"}
        conn.request("GET", f"/api/series?{query}", headers=headers)
        answer = conn.getresponse()
        body = answer.read()
    except OSError:
        return 0
    finally:
        conn.close()
    if answer.status != 200:
        return 0
    series = json.loads(body)["series"]
    return int(series[0]["total"]) if series else 0


def wait_for(what: str, check: object, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="The example's folder.")
    args = parser.parse_args()
    data = args.data or Path(tempfile.mkdtemp(prefix="kobo-live-"))
    where = ["--data", str(data / "server")]

    # 1. accounts, the server, the token in the environment (Board's uploader inherits it)
    kobo("admin", "create-user", "ana", "--no-password", *where)
    kobo("admin", "create-project", "vision", "--owner", "ana", *where)
    token = kobo("admin", "create-token", "ana", *where).strip().splitlines()[-1]
    os.environ["KOHAKUBOARD_TOKEN"] = token
    os.environ["KOHAKUBOARD_SYNC_LINGER"] = "2"  # the down server's uploader gives up soon
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "kohakuboard.cli", "serve", *where, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for("kobo serve", lambda: listening(port) or server.poll() is not None)
        print(f"kobo serve on {url}")

        # 2. a run synced live
        boards = data / "boards"
        board = Board(name="live-run", base_dir=boards, remote=url, project="vision")
        for step in range(200):
            board.log(**{"train/loss": math.exp(-step / 50)})
        wait_for("the first points", lambda: points_on_server(port, token, board.id, "train/loss"))
        seen = points_on_server(port, token, board.id, "train/loss")
        print(f"while the run goes on, the server has {seen} of its points")
        for step in range(200, 300):
            board.log(**{"train/loss": math.exp(-step / 50)})
        board.finish()  # does not wait for the upload
        wait_for("all points", lambda: points_on_server(port, token, board.id, "train/loss") == 300)
        print("after finish(): the server has all 300 points")

        # 3. a run whose server is down: trains and finishes as usual, data waits on disk
        down = f"http://127.0.0.1:{free_port()}"
        offline = Board(name="offline-run", base_dir=boards, remote=down, project="vision")
        for step in range(300):
            offline.log(**{"train/loss": math.exp(-step / 50)})
        started = time.perf_counter()
        offline.finish()
        print(f"server down: finish() took {time.perf_counter() - started:.2f} s")
        print("later:", kobo("sync", str(offline.path), "--remote", url, "--project", "vision"))
        count = points_on_server(port, token, offline.id, "train/loss")
        print(f"the server now has {count} points of the offline run")
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"server stopped; everything is in {data}")


if __name__ == "__main__":
    main()
