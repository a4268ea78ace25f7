"""Garbage collection of the store (``kobo admin gc``), and the pins that make it safe.

Store objects (segments, media files) are content-addressed, so two boards that hold the same
bytes share one object, and an object may only go when **no** ledger row (``segments``,
``media``) refers to it any more. The collector:

1. purges the boards that were deleted (``DELETE /api/runs/ID``) more than ``purge_after``
   seconds ago: their ledger rows go (a restore is no longer possible);
2. lists the store and, batch by batch, deletes the objects that no ledger row refers to and
   no upload has pinned.

The race it must lose to: an upload of content the store holds already. The upload's ``put``
sees the object and skips writing it, then the ledger commit refers to it; a collector that
decided "unreferenced" in between would delete an object that a committed row needs. So:

* an upload **pins** its key (a row of ``object_pins``) in a committed transaction *before*
  it looks at the store, and removes its pin in the transaction that commits the ledger row
  referring to the key (a pin of an upload that died lapses after :data:`PIN_SECONDS`);
* the collector re-checks references and pins of a batch and deletes its objects inside one
  transaction holding the collector's lock exclusively, and pinning takes that lock shared
  (PostgreSQL advisory locks; SQLite's write transactions are serial anyway).

Hence a pin is either committed before the collector's check (the object is kept) or waits
until its deletions are done (the upload's ``put`` then finds no object and writes it again),
and from the pin to the commit, and after it, something refers to the key at every moment.
Lapsed pins are removed by the collector.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .db import Database, Tx
from .store import Store

logger = logging.getLogger(__name__)

GC_LOCK = 0x6B6F6267  # "kobg": the collector (exclusive) against pinning uploads (shared)
PIN_SECONDS = 6 * 3600.0  # far longer than any upload takes from its pin to its commit
BATCH = 200
DAY = 86400.0


def pin(db: Database, key: str, *, seconds: float = PIN_SECONDS) -> int:
    """Keep ``key`` from the collector; call before ``store.put(key)``, and :func:`unpin` the
    returned id in the transaction that commits the ledger row referring to the key (a pin
    of an upload that never commits lapses after ``seconds``)."""
    with db.transaction() as tx:
        tx.lock(GC_LOCK, shared=True)
        pid = tx.value(
            "INSERT INTO object_pins (store_key, until) VALUES (?, ?) RETURNING id",
            (key, time.time() + seconds),
        )
    return int(pid)


def unpin(tx: Tx, pin_id: int) -> None:
    tx.execute("DELETE FROM object_pins WHERE id = ?", (pin_id,))


@dataclass
class GcReport:
    """What one collection did (or, with ``dry_run``, would do)."""

    dry_run: bool
    purged_boards: list[str] = field(default_factory=list)
    objects_seen: int = 0
    deleted: list[str] = field(default_factory=list)  # store keys
    deleted_bytes: int = 0


def _in_use(tx: Tx, keys: list[str], now: float, purge_before: float | None) -> set[str]:
    """The keys among ``keys`` that a ledger row or a valid pin holds (rows of boards to be
    purged, deleted before ``purge_before``, do not count: the dry run's view)."""
    marks = ",".join("?" * len(keys))
    skip = ""
    skip_params: tuple[object, ...] = ()
    if purge_before is not None:
        skip = (
            " AND board_id NOT IN (SELECT id FROM boards WHERE deleted_at IS NOT NULL "
            "AND deleted_at < ?)"
        )
        skip_params = (purge_before,)
    rows = tx.all(
        f"SELECT store_key FROM segments WHERE store_key IN ({marks}){skip} "
        f"UNION SELECT store_key FROM media WHERE store_key IN ({marks}){skip} "
        f"UNION SELECT store_key FROM object_pins WHERE store_key IN ({marks}) AND until > ?",
        (*keys, *skip_params, *keys, *skip_params, *keys, now),
    )
    return {str(r[0]) for r in rows}


def _batches(keys: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for key in keys:
        batch.append(key)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def collect(
    db: Database,
    store: Store,
    *,
    purge_after: float | None = 30 * DAY,
    dry_run: bool = False,
    batch: int = BATCH,
) -> GcReport:
    """Purge boards deleted more than ``purge_after`` seconds ago (None: none) and delete the
    store objects nothing refers to (see the module docstring); ``dry_run`` changes nothing."""
    report = GcReport(dry_run=dry_run)
    now = time.time()
    purge_before = None if purge_after is None else now - purge_after
    if purge_before is not None:
        with db.transaction(write=not dry_run) as tx:
            rows = tx.all(
                "SELECT b.id, p.name, b.uid FROM boards b JOIN projects p ON p.id = b.project_id "
                "WHERE b.deleted_at IS NOT NULL AND b.deleted_at < ? ORDER BY b.id",
                (purge_before,),
            )
            report.purged_boards = [f"{r[1]}/{r[2]}" for r in rows]
            if not dry_run:
                for r in rows:  # the ledger rows go with the board (ON DELETE CASCADE)
                    tx.execute("DELETE FROM boards WHERE id = ?", (r[0],))
        for name in report.purged_boards:
            logger.info("gc: %s board %s", "would purge" if dry_run else "purged", name)
    for keys in _batches(store.keys(), batch):
        report.objects_seen += len(keys)
        # reads first, outside the lock: most batches have nothing to delete
        with db.transaction(write=False) as tx:
            used = _in_use(tx, keys, now, purge_before)
        if len(used) == len(keys):
            continue
        with db.transaction(write=not dry_run) as tx:
            if not dry_run:
                tx.lock(GC_LOCK)  # no upload pins a key while its batch is checked and deleted
            now = time.time()
            used = _in_use(tx, keys, now, purge_before)
            for key in keys:
                if key in used:
                    continue
                size = store.size(key)
                if not dry_run:
                    store.delete(key)
                report.deleted.append(key)
                report.deleted_bytes += size
    if not dry_run:
        with db.transaction() as tx:
            tx.execute("DELETE FROM object_pins WHERE until < ?", (time.time(),))
    logger.info(
        "gc: %d objects seen, %d %s (%d bytes)",
        report.objects_seen,
        len(report.deleted),
        "would be deleted" if dry_run else "deleted",
        report.deleted_bytes,
    )
    return report
