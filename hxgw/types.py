"""Type aliases shared across the package."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hxgw.pipeline.context import RequestContext

Next = Callable[["RequestContext"], Awaitable[None]]
Step = Callable[["RequestContext", Next], Awaitable[None]]
