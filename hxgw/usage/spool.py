"""The on-disk spool: ledger rows that could not reach the store, kept until it is back.

Rows are appended as JSON lines to files in `directory`, fsync'd once per batch; a file is
closed after `file_bytes` and a new one begun, so a replay frees space file by file. Names
start with the creation time, so sorting them replays in order, across processes.

Several worker processes share one spool directory. Each holds an flock on the file it
appends to; a replay takes the lock of each file before reading it and skips a file
locked by a live process, which replays its own. A file left by a process that died is
unlocked and replayed by whoever comes next. Should two replay the same file all the
same, the store's primary key keeps each row once.

The bound is the total size of the directory. When a batch does not fit, the rows that
fit are kept and the newest are refused: the caller counts and logs them.

A file that cannot be opened (another user's, a directory under a spool file's name) is
left where it is, and said once: one such file must not keep the ledger from its store.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from io import BufferedReader, BufferedWriter
from pathlib import Path

import structlog

from hxgw import jsonio
from hxgw.usage.row import COLUMNS, UsageRow, Values, as_dict

SUFFIX = ".jsonl"

log = structlog.get_logger("hxgw.usage")


def unusable(directory: Path) -> str | None:
    """Why `directory` cannot serve as a spool, or None (one not there yet is made)."""
    try:
        mode = directory.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"it cannot be read: {exc.strerror or exc}"
    if not stat.S_ISDIR(mode):
        return "it is not a directory"
    if not os.access(directory, os.R_OK | os.W_OK | os.X_OK):
        return "this user may not read and write it"
    return None


class Spool:
    def __init__(self, directory: Path, max_bytes: int, *, file_bytes: int = 4 << 20) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.file_bytes = file_bytes
        self._file: BufferedWriter | None = None
        self._path = directory
        """The file `_file` appends to."""
        self.bad_lines = 0
        """Lines that could not be read back (a write torn by a crash), skipped."""
        self.unreadable: set[Path] = set()
        """Files that could not be opened, skipped, each said once."""
        # Files left by an earlier run are waiting: the first flush replays them.
        self.waiting = any(self._paths())
        self.bytes = self.size()

    def _paths(self) -> list[Path]:
        try:
            return sorted(p for p in self.directory.iterdir() if p.name.endswith(SUFFIX))
        except OSError:  # none yet, or no spool at all: `unusable` said why at the start
            return []

    def _skip(self, path: Path, exc: OSError) -> None:
        if path not in self.unreadable:
            self.unreadable.add(path)
            log.error(
                "a usage spool file cannot be read; its rows stay in it, the rest are written",
                file=str(path),
                error=exc.strerror or str(exc),
                fix="give it to the gateway's user (chown), or move it out of the spool",
            )

    def size(self) -> int:
        total = 0
        for path in self._paths():
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
                total += path.stat().st_size
        return total

    def add(self, rows: Sequence[Values]) -> int:
        """Keep as many rows as fit, oldest first; return how many. Raises OSError."""
        self.bytes = self.size()  # other workers add to the same directory
        room = self.max_bytes - self.bytes
        lines: list[bytes] = []
        for row in rows:
            line = jsonio.dumps(as_dict(row)) + b"\n"
            if len(line) > room:
                break
            room -= len(line)
            lines.append(line)
        if not lines:
            return 0
        target = self._target()
        data = b"".join(lines)
        try:
            target.write(data)
            target.flush()
            os.fsync(target.fileno())
        except OSError:
            # A line may be half written (a full disk): later rows go to a file of their
            # own rather than onto its end, where the torn line would take one with it.
            with contextlib.suppress(OSError):
                target.close()
            self._file = None
            # One left empty is no use to a replay, and a full disk would leave one a batch.
            with contextlib.suppress(OSError):
                if self._path.stat().st_size == 0:
                    self._path.unlink()
            raise
        self.bytes += len(data)
        self.waiting = True
        if target.tell() >= self.file_bytes:
            self._close_file()
        return len(lines)

    def _target(self) -> BufferedWriter:
        if self._file is None:
            self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)
            name = f"{time.time_ns():020d}-{os.getpid()}{SUFFIX}"
            # Locked under a name no replay reads, then named: opened and locked under
            # its own name, another worker's replay could take it in between, empty, for
            # a dead worker's, and delete it under the rows about to be written.
            # Its rows name keys and what they spent: the owner's alone, whatever the umask.
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
            file = open(os.open(self.directory / f"{name}.new", flags, 0o600), "ab")  # noqa: SIM115
            fcntl.flock(file.fileno(), fcntl.LOCK_EX)
            os.rename(self.directory / f"{name}.new", self.directory / name)
            self._path = self.directory / name
            # The new name must survive a crash as well as the rows written under it.
            directory = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
            self._file = file
        return self._file

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def replay(self, write: Callable[[list[Values]], None], chunk: int) -> int:
        """Hand every spooled row to `write`, `chunk` rows a call, oldest file first, and
        delete each file once written. Whatever `write` raises stops the replay with the
        rest still on disk. Returns the rows replayed."""
        self._close_file()  # its lock would keep this process from its own file
        replayed = 0
        for path in self._paths():
            try:
                file = path.open("rb")
            except FileNotFoundError:  # replayed by another process meanwhile
                continue
            except OSError as exc:
                self._skip(path, exc)
                continue
            with file:
                if not _taken(file):
                    continue
                rows = list(self._read(file.read()))
                for start in range(0, len(rows), chunk):
                    write(rows[start : start + chunk])
                replayed += len(rows)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        self.waiting = False
        self.bytes = self.size()
        return replayed

    def _read(self, data: bytes) -> Iterator[Values]:
        for line in data.splitlines():
            try:  # through UsageRow: a line with a field missing is refused
                fields = jsonio.loads(line)
                # A field it does not know is a newer hxgw's, whose spool this one
                # replays after a downgrade: the row is kept, without it.
                known = {name: fields[name] for name in COLUMNS if name in fields}
                yield UsageRow(**known).values()
            except (jsonio.DecodeError, TypeError):
                self.bad_lines += 1

    def close(self) -> None:
        self._close_file()

    def rows(self) -> Iterator[Values]:
        """Every row waiting here, read without taking any file: a reader's view, in which
        a line a live worker is writing may be torn, and is passed over (and counted in
        this reader's `bad_lines`)."""
        for path in self._paths():
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # replayed meanwhile
                continue
            except OSError as exc:
                self._skip(path, exc)
                continue
            yield from self._read(data)


def _taken(file: BufferedReader) -> bool:
    """Locked for this process; False when a live process holds it, or it was replayed
    and deleted by another between our open and our lock."""
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return os.fstat(file.fileno()).st_nlink > 0
