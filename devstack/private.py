"""Files and folders of the embedded stack that only its own user may read.

The data dir holds the customer graph's store files, PostgreSQL's data and the generated
passwords, so it is created 0700 (and an existing one we own is tightened), and secrets are
written through ``os.open(..., 0o600)`` so they are never readable, not even for an instant.
A shared folder someone points ``LOFT_DATA_DIR`` at (``/tmp``: sticky, or another user's) is
never chmod-ed; the servers' own folders inside it still are.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("loft.devstack")

PRIVATE_DIR = 0o700
# the data dir when PostgreSQL runs as another system user (we are root): the server's
# group may pass through to reach the PostgreSQL folder, nobody else may enter or list it
TRAVERSE_FOR_GROUP = 0o710


def private_dir(path: Path) -> Path:
    """Create ``path`` (missing parents too) readable by this user only; tighten it if it exists."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    _tighten(path, PRIVATE_DIR)
    return path


def share_traverse(path: Path, gid: int) -> None:
    """Let group ``gid`` (and only it) pass through ``path``; nobody else may enter or list it."""
    if _ours(path):
        os.chown(path, -1, gid)
    _tighten(path, TRAVERSE_FOR_GROUP)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` created 0600 (an existing file is truncated and set to 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _ours(path: Path) -> bool:
    st = path.stat()
    return st.st_uid == os.geteuid() and not st.st_mode & stat.S_ISVTX


def _tighten(path: Path, mode: int) -> None:
    if _ours(path):
        path.chmod(mode)
    elif path.stat().st_mode & 0o077:
        log.warning("%s is shared with other users (not ours to chmod); the servers' folders in it are private", path)
