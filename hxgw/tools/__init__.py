"""The commands beside `serve`: smoke, route, usage, the demo upstream, training and
evaluating the task router.

May import: config, routing, keys, usage, store, upstream, hxgw.endpoints and the
leaves (errors, jsonio, memo); not the server, the pipeline or lifecycle: a tool
works on files and stores, not through a running gateway's insides.
"""
