"""The request path: the chain of steps every request runs through, the context they
share and the exchange they answer through. `chain` assembles it, top to bottom.

The steps, in the order a proxied request meets them (module: step):
  request_id: assign_request_id     access_log: log_access      measure: record_metrics
  record_usage: record_usage        rendering: render_errors    loops: refuse_loops
  auth: authenticate
  parse: parse_body (form: read_form, file_upload: take_file for uploads)
  route: route (affinity: follow_previous, bind_to_origin; held: choose_upstream for
  files and batches)                file_refs: unbind_files     limits: apply_limits
  owners: keep_to_owner (files and batches)                     transform: transform_request
  forward: forward (failover.attempt: one candidate's try)     relay: relay
and the ends of the other chains: models (list_models, describe_model), operator
(guard_operator, answer_operator; measure's count_operator_refusals before them), refuse
(refuse_unrouted, after measure's count_unrouted and preflight's answer_preflight;
refuse_anthropic_files on the files chains).

What the steps share, beside them: context (RequestContext, Reply, the step types),
exchange (the client's side; its request half is client_request), rebind (ids of upstream
state in an answer; bound_files, the files it names), shapes (the fields a body may hold) and cors. What they use, in four
rooms of their own, each saying what it holds: `failover` (the candidates tried in turn,
and what each failure means), `answer` (the upstream's answer on its way to the client:
its head, its event stream), `uploads` (an upload read as it streams in) and `billing`
(what a request used).

May import: config, routing, upstream, observe, keys, usage (the ledger's row), and at
the top hxgw.state, hxgw.endpoints and the leaves (errors, error_shapes, jsonio, memo);
never server, lifecycle or tools.
"""
