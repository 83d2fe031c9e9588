"""The gateway as a client: the HTTP/1.1 connection pools to the upstreams,
per-request deadlines, and the probes that say which upstreams answer.

May import: hxgw.config.schema, hxgw.memo.
"""
