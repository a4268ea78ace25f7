"""One exception class per user mistake; messages name the key, the value and what is accepted."""

from __future__ import annotations


class KohakuBoardError(Exception):
    """Base class of kohakuboard's own errors."""


class InvalidKeyError(KohakuBoardError, ValueError):
    """A metric key is empty, not a string or reserved."""


class InvalidValueError(KohakuBoardError, TypeError):
    """A logged value has a type that cannot be stored under that key."""


class MultiElementTensorError(KohakuBoardError, ValueError):
    """A tensor with more than one element was passed where a scalar is expected."""


class BoardDirectoryError(KohakuBoardError, OSError):
    """The board directory cannot be created or written."""


class BoardNotFoundError(KohakuBoardError, FileNotFoundError):
    """No board exists at the given path or id."""


class BoardClosedError(KohakuBoardError, RuntimeError):
    """The board was finished and cannot take more values."""


class BoardBusyError(KohakuBoardError, RuntimeError):
    """The board is being written (or its database is locked) by another process."""


class BoardDamagedError(KohakuBoardError, RuntimeError):
    """Data files of the board are damaged (``kobo verify`` lists them, ``kobo repair``
    keeps every readable row)."""


class BoardInUseError(BoardBusyError):
    """Another live Board (in another process or in this one) has the board open."""


class InvalidTextError(KohakuBoardError, ValueError):
    """A string (caption, table cell or column, board name or project) is not Unicode text
    that can be stored: it holds a lone surrogate (``os.fsdecode`` of a non-UTF-8 name)."""


class ImportSourceError(KohakuBoardError, ValueError):
    """``kobo import`` was given a source it cannot read as the kind named (no run in it, an
    unknown layout or column), or a target board that another source or a Board wrote."""


class ValueOutOfRangeError(KohakuBoardError, ValueError, OverflowError):
    """A number is too large to store: an int beyond float64 as a value, or a step beyond
    a signed 64-bit int."""


class InvalidRemoteError(KohakuBoardError, ValueError):
    """``remote=``/``project=`` of a live-synced Board (or ``KOHAKUBOARD_REMOTE``/
    ``KOHAKUBOARD_PROJECT``) is not a server URL and project name that sync can use."""


class TensorChangedError(KohakuBoardError, RuntimeError):
    """A tensor handed to ``log_histograms(copy=False)`` was modified in place before the
    background thread read it; its histogram is not stored."""


ACCEPTED_TYPES = (
    "int, float, bool, a numpy number, a one-element numpy array or torch tensor, "
    "Media, Table, Histogram (or a list of Media)"
)


def bad_value(key: str, value: object) -> InvalidValueError:
    return InvalidValueError(
        f"cannot log key {key!r}: got {type(value).__module__}.{type(value).__qualname__} "
        f"{_short(value)}; accepted: {ACCEPTED_TYPES}"
    )


def bad_key(key: object, why: str) -> InvalidKeyError:
    return InvalidKeyError(f"invalid metric key {key!r}: {why}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


TEXT_ACCEPTED = (
    "str without lone surrogates (for a file name from os.fsdecode(), pass "
    "os.fsencode(name).decode('utf-8', 'backslashreplace'))"
)


def bad_text(what: str, text: str) -> InvalidTextError:
    """A string with a lone surrogate; the message shows it escaped and where it is."""
    at = lone_surrogate_at(text)
    return InvalidTextError(
        f"{what} {_short(text)} is not valid Unicode text: lone surrogate {text[at]!r} at index "
        f"{at}; accepted: {TEXT_ACCEPTED}"
    )


def lone_surrogate_at(text: str) -> int:
    """Index of the first lone surrogate in ``text`` (which cannot be written as UTF-8), or -1."""
    if text.isascii():
        return -1
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return int(exc.start)
    return -1
