"""Which model serves a request: groups and pinned models (`decision`), the
strategies and scoring, the live health and circuit breakers of each model, and
the learned task router (`learned`).

May import: hxgw.config, hxgw.errors, hxgw.jsonio, hxgw.memo. `learned` imports
nothing of hxgw (the config loads a classifier file with it, to check it).
"""
