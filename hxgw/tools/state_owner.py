"""`hxgw keys` and `hxgw usage` run by root on the service's state directory leave what
they made there to its owner, the service's user: a SQLite file (or its `-wal`, `-shm`)
made by root would be root's, which the gateway then could not write (its key store and
usage ledger refused with "attempt to write a readonly database")."""

from __future__ import annotations

import contextlib
import os

from hxgw.config import StoreSettings
from hxgw.store import SQLITE_FILE

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
        with contextlib.suppress(FileNotFoundError):  # -wal and -shm go at the last close
            if path.stat().st_uid == 0:
                os.chown(path, owner.st_uid, owner.st_gid)
