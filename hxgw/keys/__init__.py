"""Client keys and what protects them: the keys `hxgw keys` made (`store`, their table;
`book`, the serving process's copy of them), the bad-key guard (`guard`), the per-key
limits (requests and tokens per minute, requests at once, a budget per period) with their
three stores (this process's memory, the workers' shared file, Redis) and the refusals
they answer with (`refusal`), and who owns each file and batch (`owners`).

May import: hxgw.config, hxgw.observe, hxgw.store and the leaves (errors, jsonio, memo,
units).
"""

from hxgw.keys.limiters import limits_where, open_limiter, probe_limiter
from hxgw.keys.limits import (
    PERIODS,
    KeyLimits,
    LimitDecision,
    Limiter,
    LimitsUnavailable,
    Reservation,
)
from hxgw.keys.refusal import refusal

__all__ = [
    "PERIODS",
    "KeyLimits",
    "LimitDecision",
    "Limiter",
    "LimitsUnavailable",
    "Reservation",
    "limits_where",
    "open_limiter",
    "probe_limiter",
    "refusal",
]
