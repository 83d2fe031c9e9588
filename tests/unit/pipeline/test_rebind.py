"""Upstream ids in a relayed answer become the ids the client sees."""

from __future__ import annotations

import json

from hxgw.config import Model
from hxgw.pipeline.rebind import HeldIds, ResponseIds
from hxgw.upstream.affinity import bind, unbind

BETA = Model(name="beta", tier_score=0.5, specializations=(), upstream_model="m-beta",
             upstream="two")


def _event(kind: str, **data: object) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


def test_a_new_responses_id_is_bound_to_the_model_that_served_it():
    body = json.dumps({"id": "resp_up", "object": "response", "output": []}).encode()
    answer = json.loads(ResponseIds({}, learn=True).body(body, BETA))
    assert unbind(answer["id"]) is not None
    assert unbind(answer["id"]) == ("model", "beta", "resp_up")


def test_a_known_id_maps_back_to_what_the_client_sent():
    body = json.dumps({"id": "resp_up", "object": "response", "previous_response_id": "resp_p"})
    known = {"resp_up": "resp_client", "resp_p": "resp_prev_client"}
    answer = json.loads(ResponseIds(known, learn=False).body(body.encode(), BETA))
    assert (answer["id"], answer["previous_response_id"]) == ("resp_client", "resp_prev_client")


def test_an_id_in_the_models_text_is_left_alone():
    body = json.dumps({"id": "resp_up", "object": "response",
                       "output": [{"text": 'the id was "resp_up"'}]}).encode()
    answer = json.loads(ResponseIds({}, learn=True).body(body, BETA))
    assert answer["output"][0]["text"] == 'the id was "resp_up"'


def test_a_stream_learns_the_id_from_its_first_event_and_rebinds_every_later_one():
    rebind = ResponseIds({}, learn=True)
    response = {"id": "resp_up", "object": "response", "status": "in_progress"}
    first = rebind.events(_event("response.created", sequence_number=0, response=response), BETA)
    delta = rebind.events(_event("response.output_text.delta", sequence_number=1, delta="hi"), BETA)
    last = rebind.events(_event("response.completed", sequence_number=2,
                                response={**response, "status": "completed"}), BETA)
    client_id = bind("model", "beta", "resp_up")
    for block in (first, last):
        assert json.loads(block.split(b"data: ")[1])["response"]["id"] == client_id
    assert b"resp_up" not in first + delta + last


def test_a_file_a_response_cites_is_bound_to_the_upstream_that_served_it():
    # The id a client got uploading it through the gateway, which its files routes know.
    cited = {"type": "file_citation", "file_id": "file-up", "index": 3}
    body = json.dumps({"id": "resp_up", "object": "response", "output": [
        {"type": "message", "content": [{"type": "output_text", "text": "x",
                                         "annotations": [cited]}]}]}).encode()
    answer = json.loads(ResponseIds({}, learn=True).body(body, BETA))
    (annotation,) = answer["output"][0]["content"][0]["annotations"]
    assert annotation["file_id"] == bind("upstream", "two", "file-up")


def test_a_streamed_citation_is_bound_and_a_file_id_in_the_model_s_text_is_not():
    rebind = ResponseIds({}, learn=False)
    added = rebind.events(_event("response.output_text.annotation.added", annotation={
        "type": "file_citation", "file_id": "file-up"}), BETA)
    said = rebind.events(_event("response.output_text.delta", delta='{"file_id":"file-up"}'), BETA)
    assert json.loads(added.split(b"data: ")[1])["annotation"]["file_id"] == bind(
        "upstream", "two", "file-up")
    assert json.loads(said.split(b"data: ")[1])["delta"] == '{"file_id":"file-up"}'


def test_a_cited_file_already_bound_is_left_as_it_is():
    client_id = bind("upstream", "two", "file-up")
    block = _event("response.output_text.annotation.added",
                   annotation={"type": "file_citation", "file_id": client_id})
    assert ResponseIds({}, learn=False).events(block, BETA) == block


def test_a_file_id_in_a_client_s_metadata_is_the_client_s_own():
    # A response echoes its metadata, which the client wrote: it had been rewritten.
    body = json.dumps({"id": "resp_up", "object": "response", "output": [], "metadata": {
        "file_id": "file-mine", "type": "file_citation"}}).encode()
    answer = json.loads(ResponseIds({}, learn=True).body(body, BETA))
    assert answer["metadata"] == {"file_id": "file-mine", "type": "file_citation"}


def test_the_files_a_response_s_search_results_and_input_items_name_are_bound_too():
    results = {"type": "file_search_call", "results": [{"file_id": "file-up", "score": 1}]}
    items = {"object": "list", "data": [{"type": "message", "content": [
        {"type": "input_file", "file_id": "file-in"}]}]}
    answer = json.loads(ResponseIds({}, learn=True).body(json.dumps(
        {"id": "resp_up", "object": "response", "output": [results]}).encode(), BETA))
    listed = json.loads(ResponseIds({}, learn=False).body(json.dumps(items).encode(), BETA))
    assert answer["output"][0]["results"][0]["file_id"] == bind("upstream", "two", "file-up")
    assert listed["data"][0]["content"][0]["file_id"] == bind("upstream", "two", "file-in")


def test_a_container_s_file_is_none_of_the_files_routes_and_stays():
    cited = {"type": "container_file_citation", "file_id": "cfile_1", "container_id": "cntr_1"}
    block = _event("response.output_text.annotation.added", annotation=cited)
    assert ResponseIds({}, learn=False).events(block, BETA) == block


def test_a_body_that_is_not_json_passes_unchanged():
    assert ResponseIds({}, learn=True).body(b"<html>oops</html>", BETA) == b"<html>oops</html>"


def test_a_batchs_ids_and_its_files_are_bound_to_the_upstream_that_served_it():
    batch = {"id": "batch_1", "object": "batch", "input_file_id": "file-in",
             "output_file_id": "file-out", "error_file_id": None}
    answer = json.loads(HeldIds().body(json.dumps(batch).encode(), BETA))
    assert unbind(answer["id"]) == ("upstream", "two", "batch_1")
    assert unbind(answer["input_file_id"]) == ("upstream", "two", "file-in")
    assert unbind(answer["output_file_id"]) == ("upstream", "two", "file-out")
    assert answer["error_file_id"] is None


def test_a_list_of_files_is_bound_item_by_item_with_its_cursors():
    page = {"object": "list", "data": [{"id": "file-1", "object": "file"},
                                       {"id": "file-2", "object": "file"}],
            "first_id": "file-1", "last_id": "file-2", "has_more": False}
    answer = json.loads(HeldIds().body(json.dumps(page).encode(), BETA))
    assert [unbind(f["id"]) for f in answer["data"]] == [
        ("upstream", "two", "file-1"), ("upstream", "two", "file-2")]
    assert answer["last_id"] == answer["data"][1]["id"]


def test_a_batch_nested_deeper_than_can_be_written_again_passes_unchanged_and_unheld():
    # An upstream may answer 1,000 levels deep, which orjson reads and no encoder writes
    # back: the answer goes as it came, and no list is sorted by key from it.
    deep = b'{"id": "batch_1", "object": "batch", "metadata": {"x": ' + b"[" * 1000 \
        + b"]" * 1000 + b"}}"
    held = HeldIds()
    assert held.body(deep, BETA) == deep and held.document is None


def test_an_upstream_error_that_names_no_id_of_the_request_passes_unchanged():
    error = b'{"error": {"message": "No such File object: file-1"}}'
    assert HeldIds().body(error, BETA) == error


def test_an_upstream_error_names_the_id_the_client_sent():
    client_id = bind("upstream", "two", "file-1")
    error = b'{"error": {"message": "No such File object: file-1"}}'
    answer = json.loads(HeldIds({"file-1": client_id}).body(error, BETA))
    assert answer["error"]["message"] == f"No such File object: {client_id}"
