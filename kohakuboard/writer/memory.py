"""Memory settings of the writer process, applied before it imports numpy or pyarrow.

The writer's resident memory is what a training machine pays next to the training process
(issue 15, W1: the process tree's peak RSS). Two allocator defaults keep memory that was
freed: pyarrow's mimalloc pool caches its pages, and glibc's malloc raises its mmap threshold
after the first large free, so later multi-megabyte buffers (a commit's columns, compaction's
sorted copy) come from a heap that is seldom given back. Neither is needed for speed here:
the writer allocates a few large buffers per commit, not many small ones.
"""

from __future__ import annotations

import os
import sys

_M_MMAP_THRESHOLD = -3  # glibc's mallopt() parameter number
_MMAP_THRESHOLD = (
    128 << 10
)  # glibc's default, made fixed: larger blocks are mapped, and unmapped on free


def lean_allocators() -> None:
    """Arrow's system allocator (unless ``ARROW_DEFAULT_MEMORY_POOL`` says otherwise) and,
    with glibc, a fixed mmap threshold. Must run before pyarrow allocates anything."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    except (OSError, AttributeError):  # not glibc (musl has no such setting): keep defaults
        pass
