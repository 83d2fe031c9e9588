"""`hxgw keys` and `hxgw usage` run by root on the service's state directory leave what
they made there to its owner, the service's user: a SQLite file (or its `-wal`, `-shm`)
made by root would be root's, which the gateway then could not write (its key store and
usage ledger refused with "attempt to write a readonly database").

The state directory is the service's alone (0750): another user is told so, not shown a
traceback."""

from __future__ import annotations

import contextlib
import os

from hxgw.config import StoreSettings
from hxgw.store import SQLITE_FILE, StoreError

_FILES = (SQLITE_FILE, f"{SQLITE_FILE}-wal", f"{SQLITE_FILE}-shm")


def give_to_owner(settings: StoreSettings) -> None:
    """Give the database files root owns in the state directory to the directory's
    owner; nothing when the store is PostgreSQL, this process is not root, or root owns
    the directory."""
    if settings.database_url is not None or os.geteuid() != 0:
        return
    state_dir = settings.state_dir
    try:
        owner = state_dir.stat()
    except OSError:
        return
    if owner.st_uid == 0:
        return
    for name in _FILES:
        path = state_dir / name
        # -wal and -shm go at the last close; a root without its capabilities may not
        # look: it is told why the store failed, not this.
        with contextlib.suppress(OSError):
            if path.stat().st_uid == 0:
                os.chown(path, owner.st_uid, owner.st_gid)


def denied(exc: StoreError, settings: StoreSettings) -> str | None:
    """Where the store is and why it cannot be read, when this user may not read the state
    directory or its database; None when the store failed for another reason."""
    if not isinstance(exc.__cause__, PermissionError):
        return None
    path = settings.state_dir / SQLITE_FILE
    return f"at {path}: permission denied (run as root or as the service's user)"
