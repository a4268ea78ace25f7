"""Histograms of many tensors at one step, and watching a model's gradients and parameters.

``log_histograms`` turns all tensors of one call into one ``HistogramBatch`` (one copy on the
CPU, or one queued batch of device work on an accelerator) and hands one ``Histogram`` per key
to ``board.log()``, so every histogram of the call shares one ``step`` and the board's current
``global_step``, like the scalars of that training step. The flusher thread asks each key for
its payload; the first request finishes the whole batch, with one device-to-host copy per
device. Nothing here reads a tensor's value in the calling thread.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, overload

from ..errors import BoardClosedError, bad_key
from ..types import Histogram
from ..types._common import describe, is_torch_tensor
from ..types.histogram import PRECISIONS, _check_bins, _check_range
from .values import check_key

logger = logging.getLogger(__name__)

KINDS = ("parameters", "gradients")
# The histogram modes of board.watch(log=) and of the integrations: what each collects, in the
# order it is logged, and the key prefix of each kind.
HISTOGRAM_MODES: dict[str, tuple[str, ...]] = {
    "gradients": ("gradients",),
    "parameters": ("parameters",),
    "all": ("gradients", "parameters"),
}
PREFIXES = {"gradients": "grad/", "parameters": "param/"}
_WATCHES: weakref.WeakSet[ModelWatch] = weakref.WeakSet()


def log_histograms(
    board: Any,
    named_tensors: Mapping[str, Any] | Iterable[tuple[str, Any]],
    prefix: str = "",
    *,
    kind: str = "parameters",
    bins: int = 64,
    range: tuple[float, float] | None = None,  # shadows builtin: Histogram's argument name
    scale: str = "linear",
    precision: str = "exact",
    extra: Mapping[str, Any] | None = None,
    global_step: int | None = None,
    copy: bool = True,
) -> list[str]:
    """Log a histogram of every tensor in ``named_tensors`` in one ``board.log()`` call.

    Args:
        board: the Board to log to.
        named_tensors: a mapping or an iterable of ``(name, tensor)`` pairs, e.g.
            ``model.named_parameters()``. Each is logged under ``prefix + name``.
        prefix: prepended to every name (e.g. ``"grad/"``).
        kind: ``"parameters"`` histograms the tensors themselves, ``"gradients"`` their
            ``.grad``. None and sparse tensors are skipped (with a debug log).
        bins, range, scale, precision: as for :class:`~kohakuboard.types.Histogram`, shared
            by all tensors of the call.
        extra: more values (e.g. ``{"loss": loss}``) logged in the same call, at the same step.
        global_step: passed to ``board.log()`` (default: the board's current global step).
        copy: ``True`` (default): CPU tensors are copied before this returns, so the caller
            may change them right after. ``False``: they are not copied here; the background
            thread copies them when it bins them, later. Only for tensors nothing modifies in
            place until then, e.g. gradients when ``optimizer.zero_grad()`` sets them to None
            (torch's default). A tensor modified in place before it is read (its version
            counter moved) is not stored, and the error is logged (``TensorChangedError``).
            Device tensors are never copied (their work is queued on the device's stream).

    Returns:
        The keys that were logged.

    All histograms (and ``extra``) share one ``step``; nothing waits for a device or reads a
    tensor's value here (see docs/histograms.md for what runs where).
    """
    if kind not in KINDS:
        raise ValueError(f"log_histograms kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(copy, bool):
        raise TypeError(f"log_histograms copy must be True or False, got {copy!r}")
    options = _options(bins, range, scale, precision)
    keys, tensors = _collect(named_tensors, kind, prefix)
    return _log(board, keys, tensors, options, extra, global_step, copy=copy)


def watch(
    board: Any,
    model: Any,
    log: str = "gradients",
    every: int = 100,
    *,
    bins: int = 64,
    range: tuple[float, float] | None = None,  # shadows builtin: Histogram's argument name
    scale: str = "linear",
    precision: str = "exact",
) -> ModelWatch:
    """Log histograms of ``model``'s gradients and/or parameters every ``every`` optimizer steps.

    See :class:`ModelWatch` for when histograms are taken and how to stop.
    """
    return ModelWatch(board, model, log, every, _options(bins, range, scale, precision))


@overload
def histogram_mode(value: Any, name: str) -> str: ...
@overload
def histogram_mode(value: Any, name: str, *, off: tuple[Any, ...]) -> str | None: ...
def histogram_mode(value: Any, name: str, *, off: tuple[Any, ...] = ()) -> str | None:
    """The histogram mode ``value`` names (a key of :data:`HISTOGRAM_MODES`), or None for a
    value in ``off`` (histograms turned off). Raises ValueError naming the argument ``name``,
    the value and what is accepted."""
    if isinstance(value, str) and value in HISTOGRAM_MODES:
        return value
    if any(value is o or (isinstance(value, str) and value == o) for o in off):
        return None
    accepted = ", ".join(repr(m) for m in [*HISTOGRAM_MODES, *off])
    raise ValueError(f"{name} must be one of {accepted}, got {value!r}")


def model_tensors(
    model: Any, mode: str, *, optimizer: Any = None, trainable_only: bool = False
) -> list[tuple[str, Any]]:
    """The ``(key, tensor)`` pairs that histogram mode ``mode`` collects from ``model``:
    ``grad/<name>``, the ``.grad`` of each parameter that has one, and/or ``param/<name>``,
    each parameter, in the order of :data:`HISTOGRAM_MODES`. Reads no tensor's value.

    Args:
        model: anything with ``named_parameters()`` (a ``torch.nn.Module``).
        mode: a key of :data:`HISTOGRAM_MODES`.
        optimizer: only the parameters it steps (in its ``param_groups``).
        trainable_only: only parameters with ``requires_grad``.
    """
    groups = getattr(optimizer, "param_groups", None) if optimizer is not None else None
    stepped = {id(p) for group in groups for p in group["params"]} if groups else None
    params = [
        (name, p)
        for name, p in model.named_parameters()
        if (stepped is None or id(p) in stepped) and (p.requires_grad or not trainable_only)
    ]
    out: list[tuple[str, Any]] = []
    for kind in HISTOGRAM_MODES[mode]:
        prefix = PREFIXES[kind]
        for name, p in params:
            value = p.grad if kind == "gradients" else p
            if value is not None:
                out.append((prefix + name, value))
    return out


class ModelWatch:
    """Logs histograms of a model's gradients (``grad/<name>``) and/or parameters
    (``param/<name>``) just before every ``every``-th optimizer step, starting with the first.

    It registers a ``torch.optim`` global step pre-hook that acts only for optimizers holding
    parameters of the model, so gradients are final and parameters not yet updated: the
    moment Lightning calls ``on_before_optimizer_step``. Each optimizer counts its own steps.
    Loops without a ``torch.optim`` optimizer call :meth:`step` once per training step
    instead (or :meth:`log` to log now). All histograms of one step share one ``board.log()``
    call, at the board's current ``global_step``. Errors are logged, never raised into the
    training loop; once the board is finished the watch removes itself.

    Use :meth:`remove` (or ``with board.watch(model): ...``) to stop watching.
    """

    def __init__(
        self, board: Any, model: Any, log: str, every: int, options: dict[str, Any]
    ) -> None:
        from torch.optim.optimizer import register_optimizer_step_pre_hook

        mode = histogram_mode(log, "watch log")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"watch every must be a positive int, got {every!r}")
        if not callable(getattr(model, "named_parameters", None)):
            raise TypeError(
                f"watch needs a torch.nn.Module (named_parameters()), got {describe(model)}"
            )
        self.mode = mode
        self.every = every
        self._options = options
        self._board = weakref.ref(board)
        self._model = weakref.ref(model)
        self._params: dict[int, str] = {id(p): n for n, p in model.named_parameters()}
        self._counts: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._mine: weakref.WeakKeyDictionary[Any, tuple[tuple[int, ...], set[str]]] = (
            weakref.WeakKeyDictionary()
        )
        self._manual = 0
        self._dead = False
        self._in_hook = False
        for old in list(_WATCHES):  # hooks cannot unregister while torch iterates over them
            if old._dead:
                old.remove()
        self._handle: Any = register_optimizer_step_pre_hook(self._before_step)
        _WATCHES.add(self)

    # -- public ---------------------------------------------------------------------------
    def step(self) -> bool:
        """Count one training step (for loops without a torch optimizer); logs on the 1st,
        ``every + 1``-th, ... call. Returns whether it logged."""
        due = self._manual % self.every == 0
        self._manual += 1
        return due and self._safely(None)

    def log(self) -> bool:
        """Log the histograms now; returns whether anything was logged."""
        return self._safely(None)

    def remove(self) -> None:
        """Stop watching (idempotent)."""
        self._dead = True
        if self._handle is not None and not self._in_hook:
            self._handle.remove()
            self._handle = None
            _WATCHES.discard(self)

    @property
    def active(self) -> bool:
        return not self._dead

    def __enter__(self) -> ModelWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # -- the hook -------------------------------------------------------------------------
    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._dead:
            return
        self._in_hook = True  # removing a hook while torch iterates over them would fail
        try:
            board = self._board()
            if board is None or board.closed:
                self.remove()
                return
            names = self._names_in(optimizer)
            if not names:
                return
            count = self._counts.get(optimizer, 0)
            self._counts[optimizer] = count + 1
            if count % self.every == 0:
                self._safely(optimizer)
        finally:
            self._in_hook = False

    def _names_in(self, optimizer: Any) -> set[str]:
        groups = optimizer.param_groups
        shape = tuple(len(group["params"]) for group in groups)
        cached = self._mine.get(optimizer)
        if cached is None or cached[0] != shape:
            params = self._params
            names = {params[id(p)] for group in groups for p in group["params"] if id(p) in params}
            cached = (shape, names)
            self._mine[optimizer] = cached
        return cached[1]

    def _safely(self, optimizer: Any) -> bool:
        board, model = self._board(), self._model()
        if board is None or model is None or board.closed:
            self.remove()
            return False
        try:
            named = model_tensors(model, self.mode, optimizer=optimizer)
            keys, tensors = _collect(named, "parameters", "")
            return bool(_log(board, keys, tensors, self._options, None, None))
        except BoardClosedError:
            self.remove()
        except Exception:
            logger.exception("kohakuboard: could not log the watched histograms")
        return False


# -- helpers -------------------------------------------------------------------------------
def _options(bins: Any, rng: Any, scale: Any, precision: Any) -> dict[str, Any]:
    if precision not in PRECISIONS:
        raise ValueError(f"Histogram precision must be 'exact' or 'compact', got {precision!r}")
    bins = _check_bins(bins, None, scale)
    return {"bins": bins, "range": _check_range(rng, scale), "scale": scale, "precision": precision}


def _pairs(named: Any) -> Iterable[tuple[Any, Any]]:
    if isinstance(named, Mapping):
        return named.items()
    if is_torch_tensor(named) or isinstance(named, (str, bytes)):
        raise TypeError(
            f"log_histograms takes a mapping or (name, tensor) pairs, got {describe(named)}"
        )
    return named  # type: ignore[no-any-return]


def _collect(named: Any, kind: str, prefix: str) -> tuple[list[str], list[Any]]:
    """Keys and values to histogram; None and sparse tensors are skipped."""
    if not isinstance(prefix, str):
        raise bad_key(prefix, f"prefix must be a str, got {type(prefix).__name__}")
    keys: list[str] = []
    values: list[Any] = []
    seen: set[str] = set()
    for pair in _pairs(named):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"log_histograms takes (name, tensor) pairs, got {describe(pair)}")
        name, tensor = pair
        if not isinstance(name, str):
            raise bad_key(name, f"names must be str, got {type(name).__name__}")
        key = check_key(prefix + name)
        value = tensor.grad if kind == "gradients" and tensor is not None else tensor
        if value is None:
            logger.debug(
                "kohakuboard: %r has no %s; skipped",
                key,
                "gradient" if kind == "gradients" else "value",
            )
            continue
        if is_torch_tensor(value):
            import torch

            if value.layout != torch.strided:
                logger.debug("kohakuboard: %r is a sparse tensor (%s); skipped", key, value.layout)
                continue
            if value.dtype.is_complex:
                raise TypeError(f"cannot histogram {key!r}: {describe(value)} is complex")
        if key in seen:
            raise bad_key(key, "the same key twice in one log_histograms call")
        seen.add(key)
        keys.append(key)
        values.append(value)
    return keys, values


def _log(
    board: Any,
    keys: list[str],
    values: list[Any],
    options: dict[str, Any],
    extra: Mapping[str, Any] | None,
    global_step: int | None,
    *,
    copy: bool = True,
) -> list[str]:
    from ..types._histogram_batch import HistogramBatch

    clash = set(keys) & set(extra or ())
    if clash:
        raise bad_key(sorted(clash)[0], "given both as a histogram and in extra")
    shared = {k: options[k] for k in ("bins", "range", "scale")}
    precision = options["precision"]
    tensors = [i for i, v in enumerate(values) if is_torch_tensor(v)]
    batch = HistogramBatch([values[i] for i in tensors], **shared, copy=copy) if tensors else None
    of_batch = {i: j for j, i in enumerate(tensors)}
    logged: dict[str, Any] = {}
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        if i in of_batch:
            logged[key] = Histogram._of_batch(batch, of_batch[i], precision)
        elif isinstance(value, Histogram):
            logged[key] = value
        else:  # numpy arrays and lists: one Histogram each
            logged[key] = Histogram(value, **shared, precision=precision)
    logged.update(extra or {})
    if global_step is not None:
        logged["global_step"] = global_step
    if logged:
        board.log(**logged)
    return keys
