"""sd_notify against a real datagram socket, as systemd listens."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hxgw.lifecycle.notify import Notifier


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()


def test_without_notify_socket_nothing_is_sent_and_nothing_fails(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    notifier.ready("fine")
    assert notifier.watchdog_interval is None


def test_ready_sends_ready_and_status(notify_socket: tuple[socket.socket, str]):
    sock, _ = notify_socket
    with Notifier() as notifier:
        notifier.ready("serving")
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving"


def test_reloading_carries_the_monotonic_timestamp(notify_socket: tuple[socket.socket, str]):
    sock, _ = notify_socket
    before = time.monotonic_ns() // 1000
    with Notifier() as notifier:
        notifier.reloading("reloading")
    fields = dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())
    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= time.monotonic_ns() // 1000


def test_the_watchdog_interval_is_half_of_what_systemd_allows(
    notify_socket: tuple[socket.socket, str], monkeypatch
):
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    with Notifier() as notifier:
        assert notifier.watchdog_interval == 2.0


def test_a_watchdog_meant_for_another_process_is_ignored(
    notify_socket: tuple[socket.socket, str], monkeypatch
):
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")
    with Notifier() as notifier:
        assert notifier.watchdog_interval is None


def test_status_lines_are_single_lines(notify_socket: tuple[socket.socket, str]):
    sock, _ = notify_socket
    with Notifier() as notifier:
        notifier.status("two\nlines")
    assert sock.recv(4096) == b"STATUS=two lines"
