"""Files written whole or not at all: a killed process or a full disk never leaves half a file behind."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from resnet_bench.errors import BadInputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block succeeds, removed if not.

    The rename is atomic on POSIX file systems, so a reader sees the old file or the new one, never a part.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The suffix stays last, so that a writer that reads the format from the name (matplotlib) still sees it.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def check_writable(folder: Path, flag: str = "--out") -> None:
    """Make the folder, or say in one line why it cannot be written (BadInputError, exit 2, naming `flag`): before
    any work."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # A name of this process's own: workers that start together each write and remove their own probe.
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".resnet-bench-write-test-")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise BadInputError(f"the folder {str(folder)!r} cannot be written: {exc.strerror or exc}; "
                            f"give a folder you can write with {flag}") from None


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether an error, or one it was raised from or while handling, is a full disk (or quota): an OSError of
    ENOSPC or EDQUOT, or SQLite's "database or disk is full" (what SQLAlchemy wraps)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "database or disk is full" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


NO_SPACE = "no space left on the device of"  # how a trial failed by a full disk begins its reason


def no_space_text(where: str) -> str:
    """The one line a full disk gets, and the reason stored on the trial it failed."""
    return (f"{NO_SPACE} {where}; what was stored before is kept: free some space and run the same command again "
            "(it retries the trial, from its last saved epoch)")
