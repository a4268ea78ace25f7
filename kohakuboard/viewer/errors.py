"""The viewer's own errors: one class per mistake, each with the HTTP status it maps to.

The app maps them to responses once (see :mod:`kohakuboard.viewer.app`); messages name the
parameter, the value received and what is accepted.
"""

from __future__ import annotations

from ..errors import KohakuBoardError


class ViewerError(KohakuBoardError):
    """Base of errors the viewer reports to its client."""

    status_code = 400


class BadParameterError(ViewerError, ValueError):
    """A query parameter has a value outside what the route accepts."""

    status_code = 422


class UnknownBoardError(ViewerError, LookupError):
    """No board with that id is served by this viewer."""

    status_code = 404


class UnknownMetricError(ViewerError, LookupError):
    """The board has no scalar series with that name."""

    status_code = 404


class BundleMissingError(ViewerError, FileNotFoundError):
    """The built web app is not where the package expects it (raised at start-up)."""

    status_code = 500


class BadTokenError(ViewerError, ValueError):
    """The access token given to the viewer (``--token``, ``KOHAKUBOARD_TOKEN``) is unusable."""

    status_code = 500
