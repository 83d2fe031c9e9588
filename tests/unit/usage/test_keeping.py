"""The rows the store did not take: spooled, or counted and said lost when the spool
refuses them too."""

from __future__ import annotations

from pathlib import Path

import structlog

from hxgw.usage.keeping import Keeper
from hxgw.usage.spool import Spool
from tests.unit.usage.rows import row

LOST = "usage rows are being lost: the store is unreachable and the spool refuses them"
TAKES_AGAIN = "the usage spool takes rows again"


def _refusing(tmp_path: Path) -> Keeper:
    """A keeper whose spool cannot be written (its directory is a file, as a full disk)."""
    (tmp_path / "spool").write_text("")
    return Keeper(Spool(tmp_path / "spool", 1 << 20))


def test_rows_the_spool_refuses_are_counted_and_said_once_the_store_takes_rows_again(
    tmp_path: Path,
):
    keeper = _refusing(tmp_path)
    with structlog.testing.capture_logs() as logs:
        keeper.keep([row(1).values(), row(2).values()])
        keeper.store_takes_rows()
    assert keeper.dropped == 2
    assert [e["rows_lost"] for e in logs if e["event"] == TAKES_AGAIN] == [2]


def test_each_spell_of_refusals_says_its_own_losses(tmp_path: Path):
    keeper = _refusing(tmp_path)
    with structlog.testing.capture_logs() as logs:
        keeper.keep([row(1).values(), row(2).values()])
        keeper.store_takes_rows()
        keeper.keep([row(3).values()])
        keeper.store_takes_rows()
    assert [e["rows_lost"] for e in logs if e["event"] == TAKES_AGAIN] == [2, 1]


def test_a_spool_with_room_for_every_row_says_none_is_lost(tmp_path: Path):
    keeper = Keeper(Spool(tmp_path / "spool", 1 << 20))
    with structlog.testing.capture_logs() as logs:
        keeper.keep([row(1).values(), row(2).values()])
    keeper.spool.close()
    assert (keeper.spooled, keeper.dropped) == (2, 0)
    assert not [e for e in logs if e["event"] == LOST]
