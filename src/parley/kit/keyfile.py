"""A secret kept in a file that many processes may race to create: one of them does, whole,
readable by its owner only (0600), and every process reads that one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path


class KeyFileError(RuntimeError):
    pass


def read_or_create(path: Path, make: Callable[[], str]) -> str:
    """The secret in `path`; when there is none, `make()` is written there first.

    The secret is written to a private file of its own (O_CREAT|O_EXCL, 0600) and then
    linked into place, which fails if another process got there first: nobody ever reads a
    half-written file, and the loser of a race reads the winner's secret.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(make() + "\n")
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            draft.unlink(missing_ok=True)
    secret = path.read_text().strip()
    if not secret:
        raise KeyFileError(f"{path} is empty: delete it and start again to make a new one.")
    return secret
