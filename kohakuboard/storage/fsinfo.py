"""Which file system a board lives on: network file systems need other SQLite settings.

SQLite's WAL mode keeps its index in shared memory (the ``-shm`` file, mapped by every
connection), which only works between processes on one host. A board on NFS, Lustre, GPFS
and the like is written on a compute node and read on a login node, so there the catalog
uses a rollback journal (see ``catalog_guard``).
"""

from __future__ import annotations

import os
from pathlib import Path

# Mount types (as /proc/self/mountinfo names them) whose files other hosts share.
NETWORK_FS = frozenset(
    {
        "nfs",
        "nfs4",
        "lustre",
        "gpfs",
        "cifs",
        "smb3",
        "smbfs",
        "fuse.sshfs",
        "sshfs",
        "beegfs",
        "ceph",
        "fuse.ceph",
        "fuse.ceph-fuse",
        "glusterfs",
        "fuse.glusterfs",
        "afs",
        "panfs",
        "pvfs2",
        "orangefs",
        "ocfs2",
        "gfs2",
        "wekafs",
        "fuse.weka",
        "quobyte",
        "fuse.quobyte",
        "fuse.juicefs",
        "fuse.s3fs",
        "fuse.rclone",
        "fuse.gcsfuse",
        "davfs",
        "fuse.davfs2",
        "9p",
    }
)
MOUNTINFO = "/proc/self/mountinfo"


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as octal escapes.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def fs_type(path: str | os.PathLike[str], *, mountinfo: str = MOUNTINFO) -> str | None:
    """The type of the file system holding ``path`` (``"ext4"``, ``"nfs4"``, ...), or None
    where this cannot be told (no ``/proc``: macOS, Windows)."""
    target = Path(path).expanduser()
    while not target.exists() and target != target.parent:
        target = target.parent
    real = os.path.realpath(target)
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    best, best_type = "", None
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        mount = _unescape(fields[4])
        inside = real == mount or real.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):  # later mounts over the same point win
            best, best_type = mount, right.split()[0]
    return best_type


def is_network_fs(path: str | os.PathLike[str], *, mountinfo: str = MOUNTINFO) -> bool:
    kind = fs_type(path, mountinfo=mountinfo)
    return kind is not None and (kind in NETWORK_FS or kind.split(".")[0] in NETWORK_FS)
