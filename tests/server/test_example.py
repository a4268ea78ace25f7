"""examples/server_quickstart.py runs offline: accounts, `kobo serve`, `kobo sync`, listing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kohakuboard.server.db import Database

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_server_quickstart(tmp_path: Path) -> None:
    data = tmp_path / "server"
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "server_quickstart.py"), "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "carol sees projects ['vision']" in out
    assert ": tiny-run finished, 50 steps" in out
    assert "train/loss: last 0.0074, min 0.0074" in out  # exp(-49 / 10)
    assert "bob sets a note: 200 -> 'first try'" in out
    assert "carol deletes it: 403 (your role in project 'vision' is viewer" in out
    assert "alice lists the users: ['alice', 'bob', 'carol']" in out
    assert "server stopped" in out
    db = Database(str(data / "server.sqlite"))
    try:
        with db.transaction(write=False) as tx:
            assert tx.one("SELECT name, notes, deleted_at FROM boards") == (
                "tiny-run",
                "first try",
                None,
            )
            assert tx.value("SELECT COUNT(*) FROM segments") >= 1
            # only the hashes of the tokens are stored
            assert all(len(h) == 64 for (h,) in tx.all("SELECT hash FROM tokens"))
    finally:
        db.close()
    assert any((data / "store" / "segments").rglob("*.parquet"))
