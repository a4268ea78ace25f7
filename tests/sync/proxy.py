"""A loopback TCP proxy that can cut connections mid-request (fault injection for sync tests).

``CutProxy(target_port)`` listens on 127.0.0.1 and forwards every connection to the target.
A connection picked for a cut (``cut_every``: every n-th connection, or ``cut_chance``: at
random) is reset (RST, no clean close) after a random number of bytes, counted in both
directions, so the cut lands anywhere: inside the request's headers or body, or inside the
answer. Deterministic for one ``seed``.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


class CutProxy:
    def __init__(
        self,
        target_port: int,
        *,
        cut_chance: float = 0.0,
        cut_every: int = 0,
        max_bytes: int = 64 << 10,
        seed: int = 0,
    ) -> None:
        self.target_port = target_port
        self.cut_chance = cut_chance
        self.cut_every = cut_every
        self.max_bytes = max_bytes
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.connections = 0
        self.cuts = 0  # connections actually cut (their byte budget ran out)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self._open: set[socket.socket] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True, name="cut-proxy")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CutProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            for s in list(self._open):
                _abort(s)
            self._open.clear()
        self._thread.join(5)

    def _budget(self) -> int | None:
        """Bytes this connection may carry before it is cut (None: never)."""
        with self._lock:
            self.connections += 1
            n = self.connections
            cut = (self.cut_every and n % self.cut_every == 0) or (
                self.cut_chance and self._rng.random() < self.cut_chance
            )
            return self._rng.randrange(0, self.max_bytes) if cut else None

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                _abort(client)  # the server is down: the client sees a reset
                continue
            with self._lock:
                self._open.update((client, upstream))
            conn = _Connection(self, client, upstream, self._budget())
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=conn.pump, args=(src, dst), daemon=True).start()

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            for s in socks:
                self._open.discard(s)


class _Connection:
    def __init__(
        self, proxy: CutProxy, client: socket.socket, upstream: socket.socket, budget: int | None
    ) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.budget = budget
        self.lock = threading.Lock()
        self.done = False
        self.pumps = 2  # both directions ended cleanly: close both sockets

    def pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    self.ended()
                    return
                with self.lock:
                    if self.budget is not None:
                        if len(data) >= self.budget:
                            data = data[: self.budget]
                            self.budget = 0
                        else:
                            self.budget -= len(data)
                    cut = self.budget == 0
                if data:
                    dst.sendall(data)
                if cut:
                    self.cut()
                    return
        except OSError:
            self.cut(counted=False)

    def ended(self) -> None:
        with self.lock:
            self.pumps -= 1
            if self.pumps or self.done:
                return
            self.done = True
        for s in (self.client, self.upstream):
            try:
                s.close()
            except OSError:
                pass
        self.proxy._forget(self.client, self.upstream)

    def cut(self, *, counted: bool = True) -> None:
        with self.lock:
            if self.done:
                return
            self.done = True
        if counted:
            with self.proxy._lock:
                self.proxy.cuts += 1
        _abort(self.client)
        _abort(self.upstream)
        self.proxy._forget(self.client, self.upstream)


def _abort(s: socket.socket) -> None:
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


@contextmanager
def cut_proxy(target_port: int, **kwargs: object) -> Iterator[CutProxy]:
    proxy = CutProxy(target_port, **kwargs).start()  # type: ignore[arg-type]
    try:
        yield proxy
    finally:
        proxy.close()
