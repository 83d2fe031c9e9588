"""A real PostgreSQL from the Debian packages, in a temporary directory on loopback.

No system service is used or left running: the server is a private cluster (initdb) on a
free 127.0.0.1 port, stopped and deleted when the test ends. Postgres refuses to run as
root, so as root (CI) the cluster belongs to `nobody`. `stop()` and `start()` keep the
port and the data directory: a test can take the store away and bring it back.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures import free_port

USER = "hxgw"


def server_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major)
    return Path(found[-1]).parent if found else None


def _major(path: str) -> int:
    return int(Path(path).parent.parent.name) if Path(path).parent.parent.name.isdigit() else 0


class Postgres:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        # Not under pytest's tmp_path: its parents are private to root, and as root the
        # server runs as nobody, who must reach its own directory.
        self.base = Path(tempfile.mkdtemp(prefix="hxgw-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self._as: list[str] = []
        if os.getuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.base, nobody.pw_uid, nobody.pw_gid)
            self._as = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                        "--clear-groups", "--"]

    def _run(self, tool: str, *args: str) -> None:
        command = [*self._as, str(self.bin_dir / tool), *args]
        result = subprocess.run(command, cwd=self.base, capture_output=True, text=True,
                                timeout=60, check=False)
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed: {result.stdout}{result.stderr}\n{log}")

    def init(self) -> Postgres:
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust",
                  "--no-locale", "-E", "UTF8", "--no-sync")
        return self

    def start(self) -> None:
        # fsync off: a test cluster need not survive a power cut, and tests run faster.
        options = f"-p {self.port} -h 127.0.0.1 -k {self.base} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "30", "start")

    def stop(self, *, mode: str = "immediate") -> None:
        """`immediate` is the abrupt end (no shutdown checkpoint); `fast` a clean stop."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def processes(self) -> list[int]:
        """The postmaster and its children (backends, checkpointer, ...)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:  # the name, in parentheses, may hold spaces: the fields follow its end
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
        return [postmaster, *children]

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """The whole server stopped (SIGSTOP), as a paused host: its kernel still takes
        the packets, so no timeout of TCP's or the server's fires. Resumed on the way out."""
        pids = self.processes()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database on this server; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop(mode="immediate")
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def running_postgres() -> Iterator[Postgres]:
    bin_dir = server_binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb); "
                    "`apt-get install postgresql`, as .ci/run does")
    server = Postgres(bin_dir).init()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """One server per test process, shared: each test takes its own database."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: Postgres) -> str:
    return postgres_server.new_database()


@pytest.fixture
def own_postgres() -> Iterator[Postgres]:
    """A server for one test alone, which it may stop and start."""
    with running_postgres() as server:
        yield server
