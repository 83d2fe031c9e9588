"""What the gateway tells: structured logs, the access line, Prometheus metrics,
request ids.

May import: hxgw.config.schema, hxgw.routing.decision (health, for the circuit gauges), hxgw.memo.
"""
