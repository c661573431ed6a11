"""Files that the launcher and its tasks write in a model directory, opened without following symlinks.

A model directory is the user's, and may be shared: a symlink planted where the launcher writes
(`logs/chief-0.log` -> a file elsewhere) must not make a root launcher append to, truncate or overwrite
that other file. So files are opened with O_NOFOLLOW (the kernel refuses a symlink as the last component),
the directories the launcher makes inside the model directory must not be symlinks either, and whole files
are written under a temporary name and renamed over the old one (a rename replaces a link, never follows it).
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from typing import IO

from launcher.cluster.errors import UserError


class SymlinkRefused(UserError):
    """A path where the launcher writes is a symlink."""

    def __init__(self, path: str):
        super().__init__(f"{path} is a symbolic link: refusing to write through it (remove it, or use "
                         f"another --model_dir)")


def check_not_link(path: str) -> None:
    """SymlinkRefused if `path` exists as a symlink (whatever it points to)."""
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise SymlinkRefused(path)
    except FileNotFoundError:
        pass


def make_dir(path: str) -> None:
    """`os.makedirs(path, exist_ok=True)` for a directory inside the model directory: never a link."""
    check_not_link(path)
    os.makedirs(path, exist_ok=True)
    check_not_link(path)  # planted between the check and the make


def _open(path: str, flags: int, mode: int = 0o644) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise SymlinkRefused(path) from None
        raise


def open_append(path: str) -> IO[str]:
    """A text file opened for appending, line-buffered, created if missing."""
    return os.fdopen(_open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a", buffering=1)


def open_update(path: str) -> IO[str]:
    """A text file opened for reading and writing, created if missing, not truncated (a lock file)."""
    return os.fdopen(_open(path, os.O_RDWR | os.O_CREAT), "r+")


def open_read(path: str) -> IO[str]:
    """A text file opened for reading; FileNotFoundError if missing."""
    return os.fdopen(_open(path, os.O_RDONLY), "r")


def append_fd(path: str) -> int:
    """A raw descriptor appending to `path` (for dup2 onto stdout/stderr)."""
    return _open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)


def write_replacing(path: str, text: str) -> None:
    """Write `text` to `path` in one piece: a temporary file in the same directory, renamed over `path`.

    A kill leaves the old file or the new one, never half; a symlink at `path` is replaced, not followed."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the user's other tools read these files
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)  # a full disk must not leave half a file behind
        except FileNotFoundError:
            pass
        raise
