"""The process under systemd: the daemon, its workers, sd_notify, reload and drain.

`serve` is `hxgw serve`: it loads the config and runs the `daemon` (one process) or the
`supervisor` (`workers: N`; `worker` is one worker as the supervisor sees it, `spawn`
starts one, `pinned` holds the settings a reload cannot change for them). The daemon
listens (`listening`, its aiohttp server; `capacity`, how many streams it can hold),
tells systemd (`notify`; `status_words`, what STATUS= says), takes signals (`signals`;
`start_signals`, those around its start), opens its stores (`stores`; `seeds`, where a
key's budget begins), runs what serves beside the requests (`beside`), and drains on
SIGTERM (`drain`). `override` is what the command line sets whatever the files say;
`aside`, waiting without being held up.

May import: everything but tools: config, endpoints, keys, observe, pipeline, routing,
runtime, server, state, store, upstream, usage, and the leaves (errors, error_shapes,
jsonio, memo, units).
"""
