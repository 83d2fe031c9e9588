"""What the gateway tells: structured logs (`log`), the access line (`access`),
Prometheus metrics (`metrics`), request ids (`ids`).

May import: hxgw.config, hxgw.routing (health, for the circuit gauges), hxgw.memo.
"""

from hxgw.observe.access import AccessLog, configure
from hxgw.observe.ids import RequestIds
from hxgw.observe.log import REQUEST_ID, on_journal
from hxgw.observe.metrics import Metrics

__all__ = ["REQUEST_ID", "AccessLog", "Metrics", "RequestIds", "configure", "on_journal"]
