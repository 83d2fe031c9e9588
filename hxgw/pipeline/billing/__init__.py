"""What a request used, for its ledger row, its key's limits and the metrics: `usage`
(what it used: the upstream's count, or the gateway's estimate), `reported_usage` (the
upstream's count read from its answer), and the usage the gateway bills once, whichever
answer carries it first (`once`): a background response's (`background`), a batch's
(`batch_usage`).

May import what the pipeline may; never the steps.
"""
