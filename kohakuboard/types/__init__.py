"""Value types a training script logs besides plain numbers: media, tables and histograms.

Constructing one is cheap and takes a snapshot (no device sync); ``to_payload()`` later turns it
into plain data for the writer process, and :func:`encode_media` turns a media payload into file
bytes there. Importing this package imports neither torch nor Pillow.
"""

from kohakuboard.types.encode import EncodedMedia, encode_media
from kohakuboard.types.histogram import Histogram, expand_histogram
from kohakuboard.types.media import Media
from kohakuboard.types.table import Table

__all__ = ["EncodedMedia", "Histogram", "Media", "Table", "encode_media", "expand_histogram"]
