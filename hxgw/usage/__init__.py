"""The usage ledger: one row per request, written off the request path in batches.

`Ledger.record(row)` only appends to memory; a writer thread puts the rows into the store
(hxgw.store) every batch interval, and into a bounded on-disk spool while the store is
unreachable, replaying the spool when it is back. `totals()` reads the ledger back for
`hxgw usage`.

May import: hxgw.store, hxgw.jsonio and the standard library; never the request path.
"""

from hxgw.usage.ledger import Ledger
from hxgw.usage.report import GROUPINGS, Grouping, Totals, ledger_exists, totals
from hxgw.usage.row import UsageRow
from hxgw.usage.schema import MIGRATIONS

__all__ = [
    "GROUPINGS",
    "MIGRATIONS",
    "Grouping",
    "Ledger",
    "Totals",
    "UsageRow",
    "ledger_exists",
    "totals",
]
