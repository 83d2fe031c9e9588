"""The spool on its own: files shared by worker processes, and a write torn by a crash."""

from __future__ import annotations

import os
import resource
import signal
from pathlib import Path

import pytest

from hxgw import jsonio
from hxgw.usage import Values
from hxgw.usage.row import as_dict
from hxgw.usage.spool import Spool
from tests.unit.usage.rows import row


def _replay(spool: Spool) -> list[str]:
    seen: list[str] = []

    def write(rows: list[Values]) -> None:
        seen.extend(as_dict(r)["request_id"] for r in rows)

    spool.replay(write, 10)
    return seen


def test_a_file_another_worker_is_appending_to_is_left_to_it(tmp_path: Path):
    writer, other = Spool(tmp_path, 1 << 20), Spool(tmp_path, 1 << 20)
    writer.add([row(1).values(), row(2).values()])
    assert _replay(other) == []
    writer.close()
    assert _replay(other) == ["req-000001", "req-000002"]
    assert list(tmp_path.iterdir()) == []


def test_a_spool_file_is_its_owners_alone_whatever_the_umask(tmp_path: Path):
    old = os.umask(0o022)
    try:
        spool = Spool(tmp_path, 1 << 20)
        spool.add([row(1).values()])
    finally:
        os.umask(old)
    (spooled,) = tmp_path.iterdir()
    assert spooled.stat().st_mode & 0o777 == 0o600
    spool.close()


def test_a_line_torn_by_a_crash_is_skipped_and_the_rest_replayed(tmp_path: Path):
    spool = Spool(tmp_path, 1 << 20)
    spool.add([row(1).values(), row(2).values()])
    spool.close()
    (path,) = tmp_path.iterdir()
    with path.open("ab") as file:
        file.write(b'{"request_id": "req-000003", "key_na')
    restarted = Spool(tmp_path, 1 << 20)
    assert restarted.waiting
    assert _replay(restarted) == ["req-000001", "req-000002"]
    assert restarted.bad_lines == 1


def test_a_row_a_newer_hxgw_spooled_is_replayed_without_the_fields_it_added(tmp_path: Path):
    spool = Spool(tmp_path, 1 << 20)
    spool.close()
    newer = as_dict(row(1).values()) | {"carbon_grams": 0.2}
    (tmp_path / "downgraded.jsonl").write_bytes(jsonio.dumps(newer) + b"\n")
    restarted = Spool(tmp_path, 1 << 20)
    assert _replay(restarted) == ["req-000001"] and restarted.bad_lines == 0


def test_its_rows_are_read_as_they_lie_even_from_a_file_a_worker_holds(tmp_path: Path):
    writer = Spool(tmp_path, 1 << 20)
    writer.add([row(1).values(), row(2).values()])
    (path,) = tmp_path.iterdir()
    with path.open("ab") as file:
        file.write(b'{"request_id": "req-000003", "key_na')  # being written
    reader = Spool(tmp_path, 1 << 20)
    assert [as_dict(r)["request_id"] for r in reader.rows()] == ["req-000001", "req-000002"]
    assert len(list(tmp_path.iterdir())) == 1  # read, not taken
    writer.close()


def test_files_are_replayed_oldest_first_across_files(tmp_path: Path):
    spool = Spool(tmp_path, 1 << 20, file_bytes=1)  # a new file after every batch
    for n in range(5):
        spool.add([row(n).values()])
    assert len(list(tmp_path.iterdir())) == 5
    assert _replay(spool) == [f"req-{n:06d}" for n in range(5)]


def test_rows_added_after_a_write_failed_halfway_are_not_glued_to_its_torn_line(
    tmp_path: Path,
):
    spool = Spool(tmp_path, 1 << 20)
    spool.add([row(1).values()])
    (first,) = tmp_path.iterdir()
    # A full disk, for real: the file may grow 20 bytes more, then writes fail (EFBIG).
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (first.stat().st_size + 20, limits[1]))
    try:
        with pytest.raises(OSError):
            spool.add([row(2).values()])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous)
    spool.add([row(3).values()])
    spool.close()
    assert _replay(Spool(tmp_path, 1 << 20)) == ["req-000001", "req-000003"]


def test_a_write_a_full_disk_refuses_leaves_no_empty_file_behind(tmp_path: Path):
    spool = Spool(tmp_path, 1 << 20)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, limits[1]))  # not a byte more (EFBIG)
    try:
        for _ in range(3):  # a batch each time the store is out of reach
            with pytest.raises(OSError):
                spool.add([row(1).values()])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, previous)
    assert list(tmp_path.iterdir()) == []


def _line_bytes(n: int, **fields: object) -> int:
    return len(jsonio.dumps(as_dict(row(n, **fields).values()))) + 1


def test_a_row_that_fills_the_spool_exactly_is_kept(tmp_path: Path):
    spool = Spool(tmp_path, _line_bytes(1))
    assert spool.add([row(1).values()]) == 1 and _replay(spool) == ["req-000001"]


def test_the_bound_counts_what_earlier_batches_left_in_the_spool(tmp_path: Path):
    spool = Spool(tmp_path, _line_bytes(1) + _line_bytes(2))
    assert spool.add([row(1).values(), row(2).values()]) == 2
    assert spool.add([row(3).values()]) == 0 and _replay(spool) == ["req-000001", "req-000002"]


def test_past_a_row_that_does_not_fit_no_newer_one_is_kept(tmp_path: Path):
    # The caller counts the first rows it was told of as kept, and the rest as not.
    big, small = row(1, model="m" * 500).values(), row(2).values()
    spool = Spool(tmp_path, _line_bytes(2) + 10)
    assert spool.add([big, small]) == 0 and _replay(spool) == []
