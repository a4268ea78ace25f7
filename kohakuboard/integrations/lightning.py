"""Lightning integration: ``Trainer(logger=KohakuBoardLogger())``.

Works with ``lightning`` (``lightning.pytorch``/``lightning.fabric``) and with the standalone
``pytorch_lightning`` package; only Lightning's public API is used. See docs/lightning.md.

- Metrics land at the ``step`` Lightning passes to ``log_metrics`` (the board's
  ``global_step``); ``epoch`` stays a metric.
- The Board is created lazily on global rank 0 only; other ranks get a no-op experiment and
  write nothing. Nothing touches the disk in ``__init__``.
- ``finalize`` finishes the board with the mapped status; logging afterwards (``trainer.test``
  after ``trainer.fit``) re-opens the same board.
- An unpickled copy in the same process logs through the Board already open there (one
  writer per board); in another process, rank 0 writes, as Lightning expects.
- ``log_histograms=`` adds a :class:`HistogramCallback` that logs gradient and/or weight
  histograms at ``on_before_optimizer_step``, at the step of that optimizer step's metrics.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import weakref
from argparse import Namespace
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kohakuboard import Board, Table
from kohakuboard.client.directory import new_board_id
from kohakuboard.client.histograms import histogram_mode, model_tensors
from kohakuboard.client.remote import resolve as check_remote
from kohakuboard.config import flatten_config

if TYPE_CHECKING:
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
    from lightning.pytorch.utilities.rank_zero import rank_zero_only
else:
    try:
        from lightning.pytorch.callbacks import Callback
        from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
        from lightning.pytorch.utilities.rank_zero import rank_zero_only
    except ImportError:
        try:
            from pytorch_lightning.callbacks import Callback
            from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
            from pytorch_lightning.utilities.rank_zero import rank_zero_only
        except ImportError as exc:
            raise ImportError(
                "KohakuBoardLogger needs Lightning: pip install 'kohakuboard[lightning]' "
                "(or the standalone pytorch_lightning package)"
            ) from exc

__all__ = ["HistogramCallback", "KohakuBoardLogger", "flatten_hparams"]

log = logging.getLogger(__name__)

# Lightning's finalize() statuses -> board statuses.
_STATUS = {
    "success": "finished",
    "finished": "finished",
    "failed": "failed",
    "aborted": "interrupted",
    "interrupted": "interrupted",
    "crashed": "failed",
}
_BOARD_OWN_ARGS = frozenset(
    {"self", "name", "config", "base_dir", "project", "backend", "board_id"}
)
_CHECKPOINT_COLUMNS = [
    "path",
    "global_step",
    "epoch",
    "monitor",
    "score",
    "is_best",
    "is_last",
    "saved_at",
]


# The Boards this process's loggers have open, by (pid, board directory). An unpickled copy
# of a logger (Lightning pickles Trainers; its own logger contract test logs through the copy)
# writes through the Board open here instead of opening a second writer on the same board.
# Weak: a Board nobody holds any more is not kept alive. The pid keeps a forked child from
# using its parent's Board.
_OPEN: weakref.WeakValueDictionary[tuple[int, str], Board] = weakref.WeakValueDictionary()
_OPEN_LOCK = threading.Lock()


def _rank() -> int:
    # One attribute shared by lightning and pytorch_lightning (both use lightning_utilities').
    return int(getattr(rank_zero_only, "rank", 0) or 0)


class KohakuBoardLogger(Logger):
    """A Lightning logger writing one KohakuBoard board per run.

    Args:
        save_dir: folder holding the boards (``kobo open`` it).
        name: display name of the board (default: its id).
        project: project the board belongs to (default ``KOHAKUBOARD_PROJECT``, else
            ``"default"``); with ``remote``, the server project the board is synced into.
        version: board id to resume (an int ``n`` means ``"version_n"``); default: a new id.
        config: extra hyperparameters, flattened like those of ``log_hyperparams``.
        backend: storage backend (``"hybrid"``, ``"duckdb"`` or ``"parquet"``).
        log_histograms: ``"gradients"``, ``"parameters"``, ``"all"`` or None: adds a
            :class:`HistogramCallback` to the Trainer.
        histogram_every_n_steps: histograms at optimizer steps ``s`` with
            ``(s + 1) % n == 0``, the steps where ``log_every_n_steps=n`` logs metrics.
        prefix: put ``"{prefix}-"`` in front of every metric key (as Lightning's loggers do).
        **board_kwargs: passed to :class:`kohakuboard.Board` (``ring_size``, ``commit_interval``,
            ``capture_console``, ``system_metrics``, ``system_interval``, ``remote``: live sync
            to a ``kobo serve``, see docs/sync.md).

    Directories follow Lightning's conventions: ``root_dir == save_dir`` (boards sit side by
    side, so Lightning's experiment sub-folder ``name`` is ``""``), ``log_dir`` is the board
    directory ``save_dir/<version>``, and ModelCheckpoint puts checkpoints in
    ``log_dir/checkpoints``.
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        save_dir: str | os.PathLike[str] = "./kohakuboard",
        name: str | None = None,
        project: str | None = None,
        version: int | str | None = None,
        config: Mapping[str, Any] | Namespace | None = None,
        backend: str = "hybrid",
        log_histograms: str | None = None,
        histogram_every_n_steps: int = 100,
        prefix: str = "",
        **board_kwargs: Any,
    ) -> None:
        super().__init__()
        histogram_mode(log_histograms, "log_histograms", off=(None,))
        _check_every(histogram_every_n_steps)
        _check_board_kwargs(board_kwargs)
        check_remote(board_kwargs.get("remote"), project)  # a bad URL fails here, not at fit
        self._save_dir = os.path.expanduser(os.fspath(save_dir))
        self._board_name = name
        self._project = project
        self._backend = backend
        self._config = config
        self._histograms = log_histograms
        self._histogram_every = histogram_every_n_steps
        self._prefix = prefix
        self._board_kwargs = board_kwargs
        # The id is chosen now (no files) so that every pickled copy (ddp_spawn) agrees on it.
        self._id = _version_to_id(version) if version is not None else new_board_id()
        self._board: Board | None = None
        self._opened = False
        self._last_step = -1
        self._trainer_ref: weakref.ref[Any] | None = None
        self._checkpoints: dict[str, list[list[Any]]] = {}
        self._checkpoint_seen: dict[str, tuple[float | None, int | None, int | None]] = {}
        self._checkpoint_files: dict[str, list[str]] = {}  # per ModelCheckpoint, in save order

    # -- Lightning's identity and directories --------------------------------------------
    @property
    def name(self) -> str:
        """Lightning's experiment sub-folder: ``""``, boards live directly in ``save_dir``.
        The board's display name is ``logger.experiment.name``."""
        return ""

    @property
    def version(self) -> str:
        """The board id (its folder name)."""
        return self._id

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def root_dir(self) -> str:
        return self._save_dir

    @property
    def log_dir(self) -> str:
        """The board directory (exists once rank 0 has created the board)."""
        return os.path.join(self._save_dir, self._id)

    @property
    @rank_zero_experiment
    def experiment(self) -> Board:
        """The :class:`kohakuboard.Board` (created on first use; re-opened after finalize).
        On ranks other than 0: an object whose every method does nothing."""
        board = self._board
        if board is None or board.closed:
            board = self._open()
        return board

    def _open(self) -> Board:
        key = (os.getpid(), os.path.realpath(self.log_dir))
        with _OPEN_LOCK:
            board = _OPEN.get(key)
            if board is None or board.closed:
                config = None
                if not self._opened and self._config is not None:
                    config = flatten_hparams(self._config)
                board = Board(
                    name=self._board_name,
                    config=config,
                    base_dir=self._save_dir,
                    project=self._project,
                    backend=self._backend,
                    board_id=self._id,
                    **self._board_kwargs,
                )
                _OPEN[key] = board
            self._board = board
            self._opened = True
            return board

    # -- logging ------------------------------------------------------------------------
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log ``metrics`` at training step ``step``; with no step (Fabric), one more than
        the last step. Rank 0 only."""
        if getattr(rank_zero_only, "rank", 0):  # inline: @rank_zero_only costs more than the log
            return
        board = self._board
        if board is None or board.closed:
            board = self._open()
        if step is None:
            step = self._last_step + 1
        self._last_step = step
        if self._prefix or "global_step" in metrics:
            metrics = self._rename(metrics)
        board.step(to=step)
        board.log(**metrics)

    def _rename(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        out = {}
        for key, value in metrics.items():
            if key == "global_step":  # reserved by Board.log
                key = "trainer/global_step"
            if self._prefix:
                key = f"{self._prefix}{self.LOGGER_JOIN_CHAR}{key}"
            out[key] = value
        return out

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Store hyperparameters as the board's config: nested mappings, Namespaces and
        dataclasses are flattened with ``/``; anything not JSON is stored as text. Never
        calls user callables and never raises (failures are logged)."""
        try:
            flat = flatten_hparams(params)
            if flat:
                self.experiment.update_config(flat)
        except Exception:
            log.warning("kohakuboard: could not record hyperparameters", exc_info=True)

    def log_histograms(
        self,
        named_tensors: Mapping[str, Any] | Iterable[tuple[str, Any]],
        step: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Histograms of many tensors in one call, at training step ``step`` (default: the
        board's current one), computed by the board's batched engine without a host sync.
        ``kwargs`` go to :meth:`kohakuboard.Board.log_histograms` (``prefix``, ``kind``,
        ``bins``, ...). Rank 0 only; the callback uses it, Fabric loops may call it."""
        if _rank() != 0:
            return
        if step is not None:
            kwargs["global_step"] = step
        self.experiment.log_histograms(named_tensors, **kwargs)

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Lightning calls this with the LightningModule at the start of every run: attach
        the histogram callback to its Trainer (no graph is recorded)."""
        if _rank() != 0:
            return
        trainer = _trainer_of(model)
        if trainer is None:
            return
        self._trainer_ref = weakref.ref(trainer)
        if self._histograms is None:
            return
        callbacks = trainer.callbacks
        if not any(isinstance(cb, HistogramCallback) for cb in callbacks):
            callbacks.append(HistogramCallback(self._histograms, self._histogram_every))

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Log a ``checkpoints`` table: one row per checkpoint file that exists now (path
        relative to the board when inside it, global step and epoch when it was written,
        monitor, score, best/last flags, mtime). The newest table is the current state."""
        try:
            self._record_checkpoints(checkpoint_callback)
        except Exception:
            log.warning("kohakuboard: could not record the checkpoint", exc_info=True)

    def _record_checkpoints(self, cb: Any) -> None:
        key = str(getattr(cb, "state_key", "ModelCheckpoint"))
        scores: dict[str, Any] = {
            os.fspath(p): s for p, s in (getattr(cb, "best_k_models", None) or {}).items()
        }
        best = os.fspath(getattr(cb, "best_model_path", "") or "")
        last = os.fspath(getattr(cb, "last_model_path", "") or "")
        if best and best not in scores:
            scores[best] = getattr(cb, "best_model_score", None)
        if last and last not in scores:
            scores[last] = None
        monitor = getattr(cb, "monitor", None)
        # With a monitor, ``best_k_models`` names every file the callback keeps. Without one
        # it only remembers the newest file (``best_model_path``); with ``save_top_k`` other
        # than 1 the earlier ones stay on disk, so files seen before that still exist are
        # listed too. (With ``save_top_k=1`` the previous file is deleted right after this
        # call: it is left out.)
        files = self._checkpoint_files.setdefault(key, [])
        files.extend(path for path in scores if path not in files)
        if monitor is None and getattr(cb, "save_top_k", 1) != 1:
            for path in files:
                if path not in scores and _mtime(path) is not None:
                    scores[path] = None
        files[:] = [path for path in files if path in scores]
        trainer = self._trainer_ref() if self._trainer_ref is not None else None
        step = int(trainer.global_step) if trainer is not None else self._last_step
        epoch = int(trainer.current_epoch) if trainer is not None else None
        board_dir = os.path.abspath(self.log_dir)
        rows = []
        for path, score in scores.items():
            path = os.fspath(path)
            mtime = _mtime(path)
            seen = self._checkpoint_seen.get(path)
            if seen is None or seen[0] != mtime:  # new or rewritten (last.ckpt) file
                seen = (mtime, step, epoch)
                self._checkpoint_seen[path] = seen
            rows.append(
                [
                    _relative(path, board_dir),
                    seen[1],
                    seen[2],
                    None if monitor is None else str(monitor),
                    _score(score),
                    path == best,
                    path == last,
                    mtime,
                ]
            )
        rows.sort(key=lambda row: (row[1] is None, row[1] or 0, row[0]))
        self._checkpoints[key] = rows
        merged = [row for rows_of_one in self._checkpoints.values() for row in rows_of_one]
        self.experiment.log(checkpoints=Table(merged, columns=_CHECKPOINT_COLUMNS))

    # -- lifecycle --------------------------------------------------------------------------
    def save(self) -> None:
        """Nothing to do: the board's writer process persists values continuously."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Finish the board (if this logger used one) with Lightning's status mapped to the
        board's: success -> finished, failed/crashed -> failed (interrupted under a
        KeyboardInterrupt), aborted -> interrupted. Does nothing if no board was created."""
        board, self._board = self._board, None
        if board is None or board.closed:
            return
        board.finish(_board_status(status))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_board"] = None  # a Board lives in the process that created it
        state["_trainer_ref"] = None
        return state


class HistogramCallback(Callback):
    """Gradient and/or weight histograms of the parameters each optimizer steps.

    Hooked at ``on_before_optimizer_step``: once per optimizer step, after gradient
    accumulation and (under AMP) after unscaling, before clipping. Histograms are logged at
    logger steps ``s`` with ``(s + 1) % every_n_steps == 0`` under ``grad/<param>`` and
    ``param/<param>``, at global step ``s``: the step Lightning logs that batch's metrics at
    (``trainer.global_step`` under automatic optimization; under manual optimization, where
    ``global_step`` counts every optimizer's steps, the batch index across epochs, so each
    optimizer of a GAN logs at the step of its loss). Only global rank 0 computes them, with
    the board's batched engine. Needs a :class:`KohakuBoardLogger` among the Trainer's
    loggers (else it does nothing).
    """

    def __init__(self, log: str = "gradients", every_n_steps: int = 100) -> None:
        self.mode = histogram_mode(log, "log")
        _check_every(every_n_steps)
        self.every_n_steps = every_n_steps
        self._failed = False
        self._done: dict[int, int] = {}  # id(optimizer) -> the last step it was logged at

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._done.clear()

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        step = _logger_step(trainer, pl_module)
        if (step + 1) % self.every_n_steps or not trainer.is_global_zero:
            return
        # Manual optimization may step one optimizer several times per batch (a WGAN's
        # critic): its tensors are logged once per logger step, at the first of them.
        if self._done.get(id(optimizer)) == step:
            return
        self._done[id(optimizer)] = step
        board_logger = next(
            (lg for lg in trainer.loggers if isinstance(lg, KohakuBoardLogger)), None
        )
        if board_logger is None:
            return
        try:
            named = model_tensors(pl_module, self.mode, optimizer=optimizer)
            if named:
                board_logger.log_histograms(named, step=step)
        except Exception:
            if not self._failed:  # never break training for a histogram; say it once
                self._failed = True
                log.error("kohakuboard: histograms failed at step %s", step, exc_info=True)


def flatten_hparams(params: Any) -> dict[str, Any]:
    """Hyperparameters as the board's config (:func:`kohakuboard.config.flatten_config`):
    mappings (OmegaConf's included), Namespaces and dataclasses flattened into ``a/b`` keys,
    anything not JSON described, never called; a lone value is stored as ``hparams``."""
    return flatten_config(params, key="hparams")


# -- small helpers ----------------------------------------------------------------------------
def _version_to_id(version: int | str) -> str:
    if isinstance(version, bool) or not isinstance(version, (int, str)):
        raise TypeError(f"version must be a board id (str) or an int, got {version!r}")
    if isinstance(version, int):
        return f"version_{version}"
    if not version or "/" in version or os.sep in version or version in (".", ".."):
        raise ValueError(f"version must be a plain folder name (a board id), got {version!r}")
    return version


def _check_every(n: Any) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"histogram_every_n_steps must be an int >= 1, got {n!r}")


def _check_board_kwargs(kwargs: Mapping[str, Any]) -> None:
    import inspect

    accepted = [p for p in inspect.signature(Board.__init__).parameters if p not in _BOARD_OWN_ARGS]
    for key in kwargs:
        if key not in accepted:
            raise TypeError(
                f"KohakuBoardLogger got an unexpected keyword argument {key!r}; "
                f"Board options accepted: {', '.join(accepted)}"
            )


def _logger_step(trainer: Any, module: Any) -> int:
    """The step Lightning passes to its loggers for the batch being trained.

    Automatic optimization: one optimizer step per logged step, so ``global_step`` (which
    counts optimizer steps, after gradient accumulation). Manual optimization: ``global_step``
    counts every ``optimizer.step()`` of every optimizer (two per batch in a GAN), while the
    loggers get one step per batch (manual optimization forbids ``accumulate_grad_batches``):
    the batch index across epochs, ``trainer.fit_loop.total_batch_idx``.
    """
    if getattr(module, "automatic_optimization", True):
        return int(trainer.global_step)
    return int(trainer.fit_loop.total_batch_idx)


def _trainer_of(model: Any) -> Any:
    try:
        return getattr(model, "trainer", None)
    except Exception:  # a LightningModule not attached to a Trainer raises
        return None


def _board_status(status: str) -> str:
    status = str(status).lower()
    if status == "failed" and isinstance(sys.exc_info()[1], KeyboardInterrupt):
        return "interrupted"  # Lightning reports Ctrl+C as "failed"
    return _STATUS.get(status, "finished")


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _relative(path: str, board_dir: str) -> str:
    full = os.path.abspath(path)
    if full == board_dir or full.startswith(board_dir + os.sep):
        return os.path.relpath(full, board_dir)
    return full


def _score(score: Any) -> float | None:
    if score is None:
        return None
    try:
        return float(score)
    except (TypeError, ValueError):
        return None
