"""The usage ledger: one row per request, written off the request path in batches.

`Ledger.record(row)` only appends to memory; a writer thread puts the rows into the store
(hxgw.store) every batch interval, and into a bounded on-disk spool while the store is
unreachable, replaying the spool when it is back. `totals()` reads the ledger back for
`hxgw usage`; `usage_series()` as series over the last hour and day, and `RecentUsage`
keeps them for the status page. `spend` reads what each budgeted key spent this period,
where a limiter's budget begins.

May import: hxgw.store, hxgw.errors, hxgw.jsonio, hxgw.memo and the standard
library; never the request path.
"""

from hxgw.usage.ledger import Ledger
from hxgw.usage.recent import RecentUsage
from hxgw.usage.report import GROUPINGS, Grouping, Totals, ledger_exists, ledger_version, totals
from hxgw.usage.row import COLUMNS, UsageRow, Values, stored_text
from hxgw.usage.schema import MIGRATIONS
from hxgw.usage.series import DAY, HOUR, WINDOWS, Window, usage_series

__all__ = [
    "COLUMNS",
    "DAY",
    "GROUPINGS",
    "HOUR",
    "MIGRATIONS",
    "WINDOWS",
    "Grouping",
    "Ledger",
    "RecentUsage",
    "Totals",
    "UsageRow",
    "Values",
    "Window",
    "ledger_exists",
    "ledger_version",
    "stored_text",
    "totals",
    "usage_series",
]
