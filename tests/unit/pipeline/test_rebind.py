"""Upstream ids in a relayed answer become the ids the client sees."""

from __future__ import annotations

import json

from hxgw.pipeline.rebind import Rebind
from hxgw.upstream.affinity import bind, unbind


def _event(kind: str, **data: object) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


def test_a_new_responses_id_is_bound_to_the_model_that_served_it():
    body = json.dumps({"id": "resp_up", "object": "response", "output": []}).encode()
    answer = json.loads(Rebind({}, learn=True).body(body, "beta"))
    assert unbind(answer["id"]) is not None
    assert unbind(answer["id"]) == ("model", "beta", "resp_up")


def test_a_known_id_maps_back_to_what_the_client_sent():
    body = json.dumps({"id": "resp_up", "object": "response", "previous_response_id": "resp_p"})
    known = {"resp_up": "resp_client", "resp_p": "resp_prev_client"}
    answer = json.loads(Rebind(known, learn=False).body(body.encode(), "beta"))
    assert (answer["id"], answer["previous_response_id"]) == ("resp_client", "resp_prev_client")


def test_an_id_in_the_models_text_is_left_alone():
    body = json.dumps({"id": "resp_up", "object": "response",
                       "output": [{"text": 'the id was "resp_up"'}]}).encode()
    answer = json.loads(Rebind({}, learn=True).body(body, "beta"))
    assert answer["output"][0]["text"] == 'the id was "resp_up"'


def test_a_stream_learns_the_id_from_its_first_event_and_rebinds_every_later_one():
    rebind = Rebind({}, learn=True)
    response = {"id": "resp_up", "object": "response", "status": "in_progress"}
    first = rebind.events(_event("response.created", sequence_number=0, response=response), "a")
    delta = rebind.events(_event("response.output_text.delta", sequence_number=1, delta="hi"), "a")
    last = rebind.events(_event("response.completed", sequence_number=2,
                                response={**response, "status": "completed"}), "a")
    client_id = bind("model", "a", "resp_up")
    for block in (first, last):
        assert json.loads(block.split(b"data: ")[1])["response"]["id"] == client_id
    assert b"resp_up" not in first + delta + last


def test_a_body_that_is_not_json_passes_unchanged():
    assert Rebind({}, learn=True).body(b"<html>oops</html>", "a") == b"<html>oops</html>"
