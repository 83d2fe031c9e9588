"""Which model serves a request: the candidates a group or a pinned model offers a key
(`routes`), the order a group's strategy puts them in (`decision`, `strategies`,
`scoring`), how long a prompt is (`prompt_size`, for `max_context` and the limits), the
live health and circuit breakers of each model (`health`, with `waiting`, the requests
it has not answered yet, and `warn_rate`, how often its failures are logged), and the
learned task router (`learned`).

May import: hxgw.config, hxgw.errors, hxgw.jsonio, hxgw.memo. `learned` imports
nothing of hxgw (the config loads a classifier file with it, to check it).
"""
