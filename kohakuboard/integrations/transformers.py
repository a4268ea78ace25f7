"""Hugging Face transformers: ``TrainingArguments(report_to="kohakuboard")`` or
``Trainer(callbacks=[KohakuBoardCallback(...)])``.

What lands on the board (one board per Trainer, written by the world process zero only):

- config: ``model.config.to_dict()`` merged with ``args.to_dict()`` (the arguments win), at
  ``on_train_begin``;
- every ``Trainer.log`` call (``on_log``) at ``global_step = state.global_step``: training
  values as ``train/<key>``, ``eval_<key>`` as ``eval/<key>``, ``test_<key>`` as ``test/<key>``;
  ``Trainer.predict`` metrics (``on_predict``) the same way;
- a ``checkpoints`` table (global_step, path, best) after every save: the checkpoint folders
  that exist then (those ``save_total_limit`` removed are gone from it);
- histograms of the gradients (and/or weights) at ``on_pre_optimizer_step``, where the gradients
  are complete, clipped and unscaled. That hook runs while ``state.global_step`` is still ``G``;
  the Trainer then counts the step and logs its loss at ``G + 1``. The histograms are therefore
  logged at ``global_step = G + 1``, next to the loss of the same optimizer step, and only on
  the steps the histogram schedule picks (see below).

Training ends with the board ``finished``; a later ``trainer.evaluate()``/``predict()`` re-opens
the same board, appends and finishes it again.

Settings: constructor arguments, else environment variables, else defaults:

========================== ====================================== =========================
argument                   variable                               default
========================== ====================================== =========================
``base_dir``               ``KOHAKUBOARD_DIR``                    ``./kohakuboard``
``project``                ``KOHAKUBOARD_PROJECT``                ``default``
``remote`` (live sync)     ``KOHAKUBOARD_REMOTE``                 none (``""``: off)
``name``                   ``KOHAKUBOARD_NAME``                   ``args.run_name`` or the id
``board_id``               ``KOHAKUBOARD_BOARD_ID`` (append)      a new board
``backend``                ``KOHAKUBOARD_BACKEND``                ``hybrid``
``log_histograms``         ``KOHAKUBOARD_LOG_HISTOGRAMS``         ``gradients``
``histogram_steps``        ``KOHAKUBOARD_HISTOGRAM_STEPS``        see below
========================== ====================================== =========================

``log_histograms`` is one of ``gradients``, ``parameters``, ``all`` or ``false``. By default
every histogram sits on a step whose loss is logged: with ``logging_strategy="steps"`` every
``n`` steps, ``n`` the smallest multiple of ``logging_steps`` that is at least 100; with
``"epoch"`` at the end of every ``k``-th epoch, ``k`` the fewest epochs that span at least 100
optimizer steps; with ``"no"`` at the last step (where the training summary is logged). An
explicit ``histogram_steps`` is taken literally: every step that is a multiple of it.
"""

from __future__ import annotations

import logging
import numbers
import os
import weakref
from dataclasses import dataclass
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from kohakuboard import Board
from kohakuboard.client.histograms import HISTOGRAM_MODES, histogram_mode, model_tensors
from kohakuboard.client.remote import resolve as check_remote

try:
    # The class transformers' INTEGRATION_TO_CALLBACK["kohakuboard"] holds: the callbacks are
    # its subclasses, so trainer.pop_callback/remove_callback(<that class>) find them.
    from kohakuboard_hf_hook import KohakuBoardReportTo
except ImportError:  # a source tree that is not installed: no registration either

    class KohakuBoardReportTo:  # type: ignore[no-redef]
        pass


__all__ = ["KohakuBoardCallback"]

logger = logging.getLogger(__name__)

# More spellings of log_histograms (and KOHAKUBOARD_LOG_HISTOGRAMS): on, or "false" (off)
_MODE_ALIASES = {
    "true": "gradients",
    "1": "gradients",
    "none": "false",
    "0": "false",
    "off": "false",
    "no": "false",
}
DEFAULT_HISTOGRAM_STEPS = 100


class KohakuBoardCallback(TrainerCallback, KohakuBoardReportTo):
    """Log a transformers ``Trainer`` run to a KohakuBoard board.

    Args:
        name: board name (default ``KOHAKUBOARD_NAME``, else ``args.run_name``, else the id).
        project: project name (default ``KOHAKUBOARD_PROJECT`` or ``"default"``).
        base_dir: folder holding boards (default ``KOHAKUBOARD_DIR`` or ``./kohakuboard``).
        backend: storage backend (default ``KOHAKUBOARD_BACKEND`` or ``"hybrid"``).
        board_id: append to this board (default ``KOHAKUBOARD_BOARD_ID``, else a new board).
        log_histograms: ``"gradients"``, ``"parameters"``, ``"all"`` or ``"false"`` (``True``
            and ``False`` work too; default ``KOHAKUBOARD_LOG_HISTOGRAMS`` or gradients).
        histogram_steps: log histograms when the step being finished is a multiple of this
            (default ``KOHAKUBOARD_HISTOGRAM_STEPS``, else the smallest multiple of the logging
            interval that is at least 100).
        config: extra values merged into the board's config.
        capture_console: store the process's stdout/stderr with the board (``True`` or
            ``"fd"``; default ``KOHAKUBOARD_CAPTURE_CONSOLE``, else off). See ``Board``.
        remote: URL of a ``kobo serve`` the board is synced to while training runs (default
            ``KOHAKUBOARD_REMOTE``, else none; the token from ``KOHAKUBOARD_TOKEN`` or ``kobo
            login``). See docs/sync.md.

    Using it in ``callbacks=`` together with ``report_to="kohakuboard"`` writes one board, with
    this instance's settings. :attr:`board` is the board while it is open (on the world process
    zero), for logging more values to the same run. Like TensorBoard's callback, it is an
    instance of the class registered for ``report_to`` (``INTEGRATION_TO_CALLBACK["kohakuboard"]``),
    so ``trainer.pop_callback``/``remove_callback`` with that class find it.
    """

    _report_to = False  # True for the instance report_to="kohakuboard" creates

    def __init__(
        self,
        *,
        name: str | None = None,
        project: str | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        backend: str | None = None,
        board_id: str | None = None,
        log_histograms: str | bool | None = None,
        histogram_steps: int | None = None,
        config: dict[str, Any] | None = None,
        capture_console: bool | str | None = None,
        remote: str | None = None,
    ) -> None:
        env = os.environ.get
        modes: dict[str, bool | str] = {"1": True, "true": True, "fd": "fd"}
        self.capture_console: bool | str = (
            capture_console
            if capture_console is not None
            else modes.get(env("KOHAKUBOARD_CAPTURE_CONSOLE", ""), False)
        )
        self.name = name if name is not None else env("KOHAKUBOARD_NAME") or None
        self.project = project if project is not None else env("KOHAKUBOARD_PROJECT") or "default"
        self.base_dir = (
            base_dir if base_dir is not None else env("KOHAKUBOARD_DIR") or "./kohakuboard"
        )
        self.backend = backend if backend is not None else env("KOHAKUBOARD_BACKEND") or "hybrid"
        # checked now (a bad URL fails when the Trainer is built, not at the first log)
        checked, _ = check_remote(remote, project)
        self.remote = checked.url if checked is not None else ""  # "": no live sync
        self.board_id = board_id if board_id is not None else env("KOHAKUBOARD_BOARD_ID") or None
        self.log_histograms = _histogram_mode(log_histograms)
        self.histogram_steps = _histogram_steps(histogram_steps)
        self.extra_config = dict(config or {})
        self._reset_runtime()

    def _reset_runtime(self) -> None:
        self._board: Board | None = None
        self._group = _Group(self)
        self._state_ref: weakref.ref[Any] | None = None
        self._training = False
        self._histograms: _HistogramPlan | None = None  # set by the writer at on_train_begin
        self._checkpoints: list[list[Any]] = []
        self._names: dict[str, str | None] = {}
        self._told: set[str] = set()

    @property
    def board(self) -> Board | None:
        """The open board, or None (not created yet, between runs, or not the writer)."""
        board = self._board
        return board if board is not None and not board.closed else None

    # -- pickling: settings only; a Board belongs to the process that created it ------------------
    def __getstate__(self) -> dict[str, Any]:
        keep: tuple[str, ...] = ("name", "project", "base_dir", "backend", "board_id")
        keep += ("log_histograms", "capture_console")
        state = {k: self.__dict__[k] for k in keep}
        state["histogram_steps"] = self.histogram_steps
        state["extra_config"] = self.extra_config
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_runtime()

    # -- transformers events -----------------------------------------------------------------------
    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._join(state)  # meet the other KohakuBoardCallbacks of this Trainer before any write

    def on_train_begin(
        self,
        args: Any,
        state: Any,
        control: Any,
        model: Any = None,
        train_dataloader: Any = None,
        **kwargs: Any,
    ) -> None:
        if not self._writes(state):
            return
        if getattr(state, "is_hyper_param_search", False) and self.board_id is not None:
            self._finish("finished")  # one board per trial
            self.board_id = None
            self._checkpoints = []
        self._training = True
        new = self.board_id is None
        board = self._open(args, state, model)
        if not new:  # a re-opened board: the arguments may have changed since
            board.update_config(self._config(args, state, model))
        self._histograms = self._histogram_plan(args, state, train_dataloader)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if logs and self._writes(state):
            self._log_metrics(args, state, logs, kwargs.get("model"))

    def on_predict(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any
    ) -> None:
        if not self._writes(state):
            return
        if metrics:
            self._log_metrics(args, state, metrics, kwargs.get("model"))
        if not self._training:
            self._finish("finished")

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any
    ) -> None:
        # The metrics already came through on_log (Trainer.evaluate logs them first).
        if not self._training and self._writes(state):
            self._finish("finished")

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self._writes(state):
            return
        step = int(state.global_step)
        path = os.path.abspath(os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{step}"))
        self._checkpoints = [c for c in self._checkpoints if c[1] != path] + [[step, path]]
        self._log_checkpoints(args, state, kwargs.get("model"), step)

    def on_pre_optimizer_step(
        self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any
    ) -> None:
        plan = self._histograms
        if plan is None or model is None or not plan.due(state.global_step + 1):
            return
        if self._writes(state):
            self._log_histograms(state.global_step + 1, model)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._writes(state):
            self._training = False
            self._histograms = None
            # save_total_limit=1 with load_best_model_at_end deletes one more after the last save
            if self._checkpoints and self.board is not None:
                self._log_checkpoints(
                    args, state, None, int(state.global_step), only_if_changed=True
                )
            self._finish("finished")

    # -- writing -----------------------------------------------------------------------------------
    def _open(self, args: Any, state: Any, model: Any) -> Board:
        """The open board; creates it (and logs the config) or re-opens it to append."""
        board = self._board
        if board is not None and not board.closed:
            return board
        name = self.name or getattr(args, "run_name", None) or None
        trial = getattr(state, "trial_name", None)
        if trial and getattr(state, "is_hyper_param_search", False):
            name = f"{name}-{trial}" if name else str(trial)
        board = Board(
            name=name,
            base_dir=self.base_dir,
            project=self.project,
            backend=self.backend,
            board_id=self.board_id,
            capture_console=self.capture_console,
            remote=self.remote,
        )
        self._board = board
        if self.board_id is None:
            board.update_config(self._config(args, state, model))
        self.board_id = board.id  # later events re-open the same board
        return board

    def _log_checkpoints(
        self, args: Any, state: Any, model: Any, step: int, only_if_changed: bool = False
    ) -> None:
        """Log the ``checkpoints`` table: the saved folders that still exist (the Trainer
        removes those beyond ``save_total_limit`` before ``on_save``)."""
        kept = [c for c in self._checkpoints if os.path.isdir(c[1])]
        if only_if_changed and len(kept) == len(self._checkpoints):
            return
        self._checkpoints = kept
        best = state.best_model_checkpoint
        best = os.path.abspath(best) if best else None
        rows = [[s, p, p == best] for s, p in kept]
        board = self._open(args, state, model)
        board.step(to=step)
        board.log_table("checkpoints", rows, columns=["global_step", "path", "best"])

    def _finish(self, status: str) -> None:
        board, self._board = self._board, None
        if board is not None:
            board.finish(status)

    def _config(self, args: Any, state: Any, model: Any) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for source in (getattr(model, "config", None), args):  # the arguments win
            to_dict = getattr(source, "to_dict", None)
            if callable(to_dict):
                config.update(to_dict())
        trial_params = getattr(state, "trial_params", None)
        if trial_params:
            config["trial_params"] = dict(trial_params)
        config.update(self.extra_config)
        return config

    def _log_metrics(self, args: Any, state: Any, logs: dict[str, Any], model: Any) -> None:
        values: dict[str, Any] = {}
        names = self._names
        for key, value in logs.items():
            name = names.get(key, "")
            if name == "":
                name = names[key] = _metric_name(key)
            if name is None:
                continue
            if value.__class__ is float or value.__class__ is int:
                values[name] = value
            elif isinstance(value, numbers.Real):
                values[name] = float(value)
            elif hasattr(value, "numel") and value.numel() == 1:
                values[name] = value  # a one-element tensor: read off the training thread
            elif key not in self._told:
                self._told.add(key)
                logger.warning(
                    "KohakuBoardCallback: not logging %r: got %s; only numbers are logged",
                    key,
                    type(value).__name__,
                )
        if values:
            board = self._open(args, state, model)
            board.step(to=int(state.global_step))
            board.log(**values)

    def _histogram_plan(
        self, args: Any, state: Any, train_dataloader: Any = None
    ) -> _HistogramPlan | None:
        """When to take histograms this run: on steps whose metrics the Trainer logs."""
        if self.log_histograms is None:
            return None
        if self.histogram_steps is not None:
            return _HistogramPlan(every=self.histogram_steps)
        strategy = getattr(args, "logging_strategy", "steps")
        strategy = getattr(strategy, "value", strategy)
        max_steps = max(int(getattr(state, "max_steps", 0) or 0), 0)
        if strategy == "epoch":
            per_epoch = _steps_per_epoch(args, state, train_dataloader, max_steps)
            epochs = -(-DEFAULT_HISTOGRAM_STEPS // per_epoch)
            return _HistogramPlan(epoch_steps=per_epoch, epochs=epochs, max_steps=max_steps)
        if strategy == "no":
            return _HistogramPlan(max_steps=max_steps) if max_steps else None
        base = max(int(getattr(state, "logging_steps", 0) or 0), 1)
        return _HistogramPlan(every=base * -(-DEFAULT_HISTOGRAM_STEPS // base))

    def _log_histograms(self, step: int, model: Any) -> None:
        mode = self.log_histograms
        if mode is None:
            return
        if any(_is_sharded(p) for p in model.parameters() if p.requires_grad):
            return self._skip_histograms("the parameters are sharded (DeepSpeed ZeRO-3 or FSDP)")
        named = model_tensors(model, mode, trainable_only=True)
        grads = [t for key, t in named if key.startswith("grad/")]
        if any(_is_sharded(t) for t in grads):
            return self._skip_histograms("the gradients are sharded (FSDP)")
        if "gradients" in HISTOGRAM_MODES[mode] and not grads:
            self._skip_histograms(
                "no parameter has a .grad (DeepSpeed keeps them in its optimizer)"
            )
        board = self._board
        if board is None or board.closed or not named:
            return None
        try:
            board.step(to=step)
            board.log_histograms(named)  # one batch: no host sync per tensor
        except Exception:
            logger.exception("KohakuBoardCallback: histograms failed; no more histograms this run")
            self._histograms = None
        return None

    def _skip_histograms(self, why: str) -> None:
        if "histograms" not in self._told:
            self._told.add("histograms")
            logger.warning("KohakuBoardCallback: histograms skipped: %s", why)

    # -- one writer per Trainer --------------------------------------------------------------------
    def _writes(self, state: Any) -> bool:
        """True if this instance writes for this Trainer (world process zero, first explicit
        KohakuBoardCallback, else the report_to one)."""
        if not state.is_world_process_zero:
            return False
        self._join(state)
        group = self._group
        if group.writer is None:
            group.writer = next((m for m in group.members if not m._report_to), group.members[0])
        if group.writer is self:
            return True
        if not self._report_to and "writer" not in self._told:
            self._told.add("writer")
            logger.warning(
                "KohakuBoardCallback: this Trainer already has a KohakuBoardCallback writing board "
                "%s; this one logs nothing",
                group.writer.board_id or "(not created yet)",
            )
        return False

    def _join(self, state: Any) -> None:
        """Group with every other instance called with the same TrainerState object."""
        ref = self._state_ref
        if ref is not None and ref() is state:
            return
        key = id(state)
        entry = _BY_STATE.get(key)
        if entry is None or entry[0]() is not state:
            _BY_STATE[key] = (weakref.ref(state, _forget(key)), self._group)
        elif entry[1] is not self._group:
            _merge(entry[1], self._group)
        self._state_ref = weakref.ref(state)


@dataclass(frozen=True)
class _HistogramPlan:
    """The finished steps (``G + 1``) that get histograms."""

    every: int = 0  # step % every == 0: logging_strategy="steps", or an explicit histogram_steps
    epoch_steps: int = 0  # logging_strategy="epoch": optimizer steps per epoch ...
    epochs: int = 1  # ... and every how many epochs
    max_steps: int = 0  # the run's last step (the only logged one under logging_strategy="no")

    def due(self, step: int) -> bool:
        if self.every:
            return step % self.every == 0
        last = 0 < self.max_steps <= step
        if self.epoch_steps:
            if step % self.epoch_steps and not last:
                return False  # not an epoch's end (the last step ends the last epoch)
            return -(-step // self.epoch_steps) % self.epochs == 0
        return last


def _steps_per_epoch(args: Any, state: Any, train_dataloader: Any, max_steps: int) -> int:
    """Optimizer steps per epoch, as the Trainer counts them (its epoch loop)."""
    try:
        batches = len(train_dataloader)
    except Exception:  # None, or an IterableDataset's loader: one epoch is the whole run
        batches = 0
    if batches > 0:
        accumulate = max(int(getattr(args, "gradient_accumulation_steps", 1) or 1), 1)
        return max(-(-batches // accumulate), 1)
    epochs = float(getattr(state, "num_train_epochs", 0) or 0)
    if max_steps and epochs >= 1:
        return max(-(-max_steps // int(epochs)), 1)
    return max(max_steps, 1)


class _ReportToCallback(KohakuBoardCallback):
    """The instance ``report_to="kohakuboard"`` adds; an explicit KohakuBoardCallback wins."""

    _report_to = True


def report_to_class() -> type[KohakuBoardCallback]:
    """The class of what ``INTEGRATION_TO_CALLBACK["kohakuboard"]()`` makes (a subclass of it;
    see ``kohakuboard_hf_hook``)."""
    return _ReportToCallback


def report_to_callback() -> KohakuBoardCallback:
    """What ``INTEGRATION_TO_CALLBACK["kohakuboard"]`` builds."""
    return _ReportToCallback()


class _Group:
    """The KohakuBoardCallbacks of one Trainer and the one among them that writes."""

    __slots__ = ("members", "writer")

    def __init__(self, first: KohakuBoardCallback) -> None:
        self.members = [first]
        self.writer: KohakuBoardCallback | None = None


# id(TrainerState) -> (weak reference to it, group of the callbacks that saw it)
_BY_STATE: dict[int, tuple[weakref.ref[Any], _Group]] = {}


def _forget(key: int) -> Any:
    def forget(ref: weakref.ref[Any]) -> None:
        entry = _BY_STATE.get(key)
        if entry is not None and entry[0] is ref:
            del _BY_STATE[key]

    return forget


def _merge(into: _Group, other: _Group) -> None:
    for member in other.members:
        if member not in into.members:
            into.members.append(member)
        member._group = into
    if into.writer is None:
        into.writer = other.writer


def _metric_name(key: Any) -> str | None:
    if not isinstance(key, str) or not key:
        return None
    for prefix in ("eval_", "test_"):
        if key.startswith(prefix) and len(key) > len(prefix):
            return prefix[:-1] + "/" + key[len(prefix) :]
    return "train/" + key


def _is_sharded(tensor: Any) -> bool:
    # FSDP2 / tensor parallel: DTensor; DeepSpeed ZeRO-3: empty local tensor with ds_* attributes
    return type(tensor).__name__ == "DTensor" or hasattr(tensor, "ds_numel")


def _histogram_mode(value: str | bool | None) -> str | None:
    """The histogram mode, or None (off), from the argument, else the environment."""
    source = "log_histograms"
    if value is None:
        value = os.environ.get("KOHAKUBOARD_LOG_HISTOGRAMS") or "gradients"
        source = "KOHAKUBOARD_LOG_HISTOGRAMS"
    if isinstance(value, bool):
        value = "gradients" if value else "false"
    mode = str(value).strip().lower()
    return histogram_mode(_MODE_ALIASES.get(mode, mode), source, off=("false",))


def _histogram_steps(value: int | None) -> int | None:
    source = "histogram_steps"
    raw: Any = value
    if value is None:
        raw = os.environ.get("KOHAKUBOARD_HISTOGRAM_STEPS")
        source = "KOHAKUBOARD_HISTOGRAM_STEPS"
        if not raw:
            return None
    try:
        steps = int(raw)
    except (TypeError, ValueError):
        steps = 0
    if isinstance(raw, bool) or steps < 1 or (isinstance(raw, float) and raw != steps):
        raise ValueError(f"{source}={raw!r} is not a positive whole number of steps")
    return steps
