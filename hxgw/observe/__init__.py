"""What the gateway tells: structured logs (`log`), the access line (`access`),
Prometheus metrics (`metrics`; per key, `key_metrics`; each configured model's series
at 0, `model_series`), request ids (`ids`), whether it is ready
(`readiness`: an upstream answered lately, the loop keeps time), the event loop's
lag (`loop_lag`), the collectors that read their figures at scrape time (the ledger's,
`ledger`; the key store's, `key_store`; the shared limits store's, `limits_store`; each
upstream's cap and queue, `saturation`), the histograms' buckets (`histogram`) and, with
workers, their figures added up (`workers`; /status.json's, `status_sum`).

May import: hxgw.config, hxgw.routing (health, for the circuit gauges), hxgw.upstream
(to probe the upstreams), hxgw.memo.
"""

from hxgw.observe.access import AccessLog, configure
from hxgw.observe.ids import RequestIds
from hxgw.observe.log import REQUEST_ID, on_journal
from hxgw.observe.metrics import Metrics

__all__ = ["REQUEST_ID", "AccessLog", "Metrics", "RequestIds", "configure", "on_journal"]
