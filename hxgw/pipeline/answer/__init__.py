"""The upstream's answer on its way to the client: its head (`upstream_headers`), an error
answer read whole and its key masked (`error_answer`, which `relay` sends and `failover`
judges), and its event stream, relayed as it arrives (`events`): `lines` cuts it into
whole lines, `opening` reads how it opens (before the gateway commits to a candidate),
`stream_end` knows its end when it comes and `end_watch` where a stream stands against
it, `usage_chunk` keeps back the usage the gateway asked for, and `error_event` ends a
stream the upstream broke.

May import what the pipeline may, and the pipeline's `billing`; never `failover`, which
reads answers with it.
"""
