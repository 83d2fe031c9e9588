"""Which model serves a request: groups and pinned models (`decision`), the
strategies and scoring, the live health and circuit breakers of each model, and
the learned task router (`learned`).

May import: hxgw.config, hxgw.errors. `learned` imports nothing of hxgw.
"""
