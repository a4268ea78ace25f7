"""The training-process side: ``Board`` and the value types it accepts."""

from ..types import Histogram, Media, Table
from .board import Board

__all__ = ["Board", "Histogram", "Media", "Table"]
