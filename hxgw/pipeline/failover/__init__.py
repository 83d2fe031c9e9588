"""What `forward` uses to try the candidates in turn: one candidate's try (`attempt`:
what `sending` sends it, and `send_upload` an upload), and what its failure means
(`failed_candidate`; `unserved`, answers that begin as no answer; `blame`, whether a 500
was the request's fault;
`waits`, how long an upstream asks to be waited for), and `failures`, the one error the
client gets when none served.

May import what the pipeline may, and the pipeline's `answer` (how a stream opens, the
answer's head, an error answer read and masked) and `uploads`; never `forward` or the
chain.
"""
