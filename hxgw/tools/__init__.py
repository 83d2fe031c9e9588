"""The commands beside `serve`, a module each (hxgw.__main__ dispatches to them):
`check_config`; `quickstart` (what `make run` runs); `keys_cli` (`hxgw keys`: its
arguments `keys_args`, its table `keys_list`, the config it checks keys against
`keys_check`; `state_owner` leaves what root made to the service's user); `usage_cli`
(its table, JSON and CSV in `usage_render`);
`route`; `smoke` (its checks in `smoke_checks`); `demo_upstream` (answering as the real
APIs do: `demo_answers`, `demo_messages`, `demo_responses`, `demo_files`,
`demo_scoring`); `train_router`, and `router_eval` (`make eval-router`).

May import: config, routing (and its learned classifier), keys, usage, store, upstream,
hxgw.endpoints and the leaves (errors, error_shapes, jsonio, memo, units); not the
server, the pipeline or lifecycle: a tool
works on files and stores, not through a running gateway's insides.
"""
