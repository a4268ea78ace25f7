"""Decoded histogram, media and table series of one viewer, kept until their series grow.

Decoding a series (JSON payloads, base64 arrays) costs far more than answering a request from
it, and the histogram and table pages ask for the same series again on every slider move. An
entry is valid while the board (path, uid) and its ``(count, last_step)`` of that series, from
``Catalog.metric_infos``, is unchanged; the least recently used entries are dropped when the
cache holds more than its budget (each entry states its own approximate size).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import UnknownMetricError

if TYPE_CHECKING:
    from ..reader import Reader
    from ..storage.base import MetricInfo
    from .catalog import Catalog

T = TypeVar("T")
DEFAULT_BUDGET = 256 << 20  # bytes, approximate


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
