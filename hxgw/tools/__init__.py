"""The commands beside `serve`: smoke, route, usage, the demo upstream, training and
evaluating the task router.

May import: everything but lifecycle.
"""
