"""Decoded histogram, media and table series of one viewer, kept until their series grow.

Decoding a series (JSON payloads, base64 arrays) costs far more than answering a request from
it, and the histogram and table pages ask for the same series again on every slider move. An
entry is valid while the board (path, uid) and its ``(count, last_step)`` of that series, from
``Catalog.metric_infos``, is unchanged; the least recently used entries are dropped when the
cache holds more than its budget (each entry states its own approximate size).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import UnknownMetricError

if TYPE_CHECKING:
    from ..reader import Reader
    from ..storage.base import MetricInfo
    from .catalog import Catalog

T = TypeVar("T")
DEFAULT_BUDGET = 256 << 20  # bytes, approximate
SHARED_BUDGET = 64 << 20  # prepared tables kept by content across series rebuilds


@dataclass(frozen=True)
class _Entry:
    signature: tuple[Any, ...]
    value: Any
    size: int


class RichCache:
    """A bounded LRU of decoded series, keyed by (board, kind, name)."""

    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self._budget = budget
        self._used = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str, str], _Entry] = OrderedDict()
        self._shared: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._shared_used = 0
        self._scratch: Path | None = None

    def shared(self, key: tuple[Any, ...], factory: Callable[[], T]) -> T:
        """The object known by ``key`` (e.g. a table step by its content hash), made by
        ``factory`` if not kept; kept across series rebuilds while within SHARED_BUDGET
        (each object states its ``nbytes``)."""
        with self._lock:
            hit = self._shared.get(key)
            if hit is not None:
                self._shared.move_to_end(key)
                return hit  # type: ignore[no-any-return]
        value = factory()
        size = int(getattr(value, "nbytes", 0))
        with self._lock:
            old = self._shared.pop(key, None)
            self._shared_used -= 0 if old is None else int(getattr(old, "nbytes", 0))
            if size <= SHARED_BUDGET:
                self._shared[key] = value
                self._shared_used += size
            while self._shared_used > SHARED_BUDGET:
                _, dropped = self._shared.popitem(last=False)
                self._shared_used -= int(getattr(dropped, "nbytes", 0))
        return value

    def scratch(self) -> Path:
        """A private temporary folder of this cache (removed with it): the Parquet copies of
        big tables that old boards stored inline."""
        with self._lock:
            if self._scratch is None:
                self._scratch = Path(tempfile.mkdtemp(prefix="kobo-tables-"))
                weakref.finalize(self, shutil.rmtree, self._scratch, True)
            return self._scratch

    def get(
        self,
        catalog: Catalog,
        board_id: str,
        kind: str,
        name: str,
        build: Callable[[Reader], tuple[T, int]],
    ) -> T:
        """The decoded series ``name`` of ``kind``: cached, or ``build(reader)`` -> (value, size).

        Raises :class:`UnknownMetricError` when the board has no such series.
        """
        info = _series_info(catalog, board_id, kind, name)
        board = catalog.board(board_id)
        catalog.check_damage(board_id, kind)
        key = (board_id, kind, name)
        # The uid tells this board from an earlier one of the same id (folder made again).
        signature = (str(board.path), board.uid, info.count, info.last_step)
        hit = self.cached(key, signature)
        if hit is not None:
            return hit.value  # type: ignore[no-any-return]
        reader, lock = catalog.reader(board_id)
        with lock:
            hit = self.cached(key, signature)  # a concurrent request may have built it
            if hit is not None:
                return hit.value  # type: ignore[no-any-return]
            value, size = build(reader)
            catalog.check_damage(board_id, kind, reader)
            self.remember(key, signature, value, size)
        return value

    def cached(self, key: tuple[str, str, str], signature: tuple[Any, ...]) -> _Entry | None:
        """The entry under ``key`` if it was stored with this ``signature``."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or hit.signature != signature:
                return None
            self._entries.move_to_end(key)
            return hit

    def remember(
        self, key: tuple[str, str, str], signature: tuple[Any, ...], value: Any, size: int
    ) -> None:
        """Store ``value`` (about ``size`` bytes), valid while ``signature`` holds."""
        entry = _Entry(signature, value, size)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._used -= old.size
            if entry.size > self._budget:
                return
            self._entries[key] = entry
            self._used += entry.size
            while self._used > self._budget:
                _, dropped = self._entries.popitem(last=False)
                self._used -= dropped.size


def _series_info(catalog: Catalog, board_id: str, kind: str, name: str) -> MetricInfo:
    for info in catalog.metric_infos(board_id):
        if info.name == name and info.kind == kind:
            return info
    raise UnknownMetricError(f"board {board_id!r} has no {kind} series {name!r}")


_CACHES: weakref.WeakKeyDictionary[Catalog, RichCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def rich_cache(catalog: Catalog) -> RichCache:
    """The cache that belongs to one viewer's catalog (created on first use)."""
    with _CACHES_LOCK:
        cache = _CACHES.get(catalog)
        if cache is None:
            cache = _CACHES[catalog] = RichCache()
        return cache
