"""The OpenAPI document of the gateway's own surface: valid, complete, and true to the app."""

from __future__ import annotations

import configparser
import copy
import json
from importlib.resources import files
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from hxgw import __version__
from hxgw.endpoints import BY_ID, MODEL, ROUTES
from hxgw.server.openapi import load_document, openapi_bytes
from tests.fixtures import REPO

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PROXIED_POSTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings",
                 "/chat/completions", "/completions", "/embeddings")
OPEN_ROUTES = {"/healthz", "/readyz", "/openapi.json"}
DOC_URI = "urn:hxgw:openapi"
JSON = "application/json"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return load_document()


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method.upper(), path): op
            for path, item in doc["paths"].items()
            for method, op in item.items() if method in METHODS}


def served_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the gateway serves, without the HEADs it also takes:
    the fixed table, and the routes with a parameter, with and without /v1."""
    fixed = {(method, path) for method, path in ROUTES if method != "HEAD"}
    with_id = {(e.method, p) for e in (MODEL, *BY_ID)
               for p in (e.upstream_path, e.upstream_path.removeprefix("/v1"))}
    return fixed | with_id


def validator(doc: dict[str, Any], pointer: str) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator for the schema at `pointer` in the document, with the
    document's own `#/components/...` references resolved."""
    registry: Registry[Any] = Registry().with_resource(DOC_URI, DRAFT202012.create_resource(doc))
    return Draft202012Validator({"$ref": f"{DOC_URI}#{pointer}"}, registry=registry)


def pointer(*parts: str) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]):
    OpenAPIV31SpecValidator(doc).validate()
    assert doc["openapi"].startswith("3.1.")


def test_the_openapi_document_lists_exactly_the_served_routes(doc: dict[str, Any]):
    assert set(operations(doc)) == served_routes()


def test_the_served_document_carries_the_package_version():
    served = json.loads(openapi_bytes())
    assert served["info"]["version"] == __version__
    assert served == load_document()


def test_the_document_is_package_data_so_that_an_installed_gateway_has_it():
    """A non-editable install (systemd/install.sh) ships only declared data files."""
    assert files("hxgw.server").joinpath("openapi.json").is_file()
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    declared = [p.strip() for p in setup["options.package_data"]["hxgw.server"].split(",")]
    assert "openapi.json" in declared


def test_every_route_without_v1_is_marked_as_an_alias_of_its_v1_route(doc: dict[str, Any]):
    ops = operations(doc)
    aliases = {key: op for key, op in ops.items() if not key[1].startswith("/v1/")
               and (key[0], "/v1" + key[1]) in ops}
    served = {path.removeprefix("/v1") for _, path in served_routes() if path.startswith("/v1/")}
    assert {path for _, path in aliases} == served
    for (method, path), op in aliases.items():
        original = ops[(method, "/v1" + path)]
        assert op["x-hx-alias-of"] == "/v1" + path
        assert op["responses"] == original["responses"]
        assert op.get("requestBody") == original.get("requestBody")


def test_only_health_readiness_and_the_document_are_open(doc: dict[str, Any]):
    assert doc["security"] == [{"bearerAuth": []}]
    open_paths = {path for (_, path), op in operations(doc).items() if op.get("security") == []}
    assert open_paths == OPEN_ROUTES


def test_metrics_takes_a_client_key_or_the_separate_metrics_key(doc: dict[str, Any]):
    assert doc["paths"]["/metrics"]["get"]["security"] == [{"bearerAuth": []}, {"metricsKey": []}]
    assert doc["components"]["securitySchemes"]["metricsKey"]["scheme"] == "bearer"


def test_the_status_page_also_takes_basic_auth_for_browsers(doc: dict[str, Any]):
    assert {"basicAuth": []} in doc["paths"]["/status"]["get"]["security"]


def test_every_proxied_route_documents_the_gateway_error_statuses(doc: dict[str, Any]):
    expected = {"400", "401", "403", "404", "405", "413", "429", "502", "503", "504"}
    for path in PROXIED_POSTS:
        assert expected <= set(doc["paths"][path]["post"]["responses"]), path


def test_when_every_candidate_failed_the_error_lists_what_was_tried(doc: dict[str, Any]):
    tried = validator(doc, pointer("components", "schemas", "UpstreamFailure"))
    for status in ("429", "502", "504"):
        ref = doc["paths"]["/v1/chat/completions"]["post"]["responses"][status]["$ref"]
        content = doc["components"]["responses"][ref.rsplit("/", 1)[1]]["content"][JSON]
        assert content["schema"] == {"$ref": "#/components/schemas/UpstreamFailure"}, status
        example = copy.deepcopy(content["example"])
        assert tried.is_valid(example), status
        del example["error"]["tried"]
        assert not tried.is_valid(example), status


def test_errors_have_the_openai_shape(doc: dict[str, Any]):
    error = validator(doc, pointer("components", "schemas", "Error"))
    assert error.is_valid({"error": {"message": "m", "type": "t", "param": None, "code": None}})
    assert not error.is_valid({"error": {"message": "m"}})
    assert not error.is_valid({"message": "m", "type": "t", "param": None, "code": None})


def test_every_example_matches_its_schema(doc: dict[str, Any]):
    places = [("components", "responses", name) for name in doc["components"]["responses"]]
    places += [("paths", path, method.lower(), "responses", status)
               for (method, path), op in operations(doc).items() for status in op["responses"]]
    checked = 0
    for place in places:
        response: dict[str, Any] = doc
        for part in place:
            response = response[part]
        if "example" in response.get("content", {}).get(JSON, {}):
            schema = validator(doc, pointer(*place, "content", JSON, "schema"))
            assert list(schema.iter_errors(response["content"][JSON]["example"])) == [], place
            checked += 1
    assert checked >= 10


def test_streaming_routes_document_server_sent_events_and_the_error_event(doc: dict[str, Any]):
    for path in ("/v1/chat/completions", "/v1/completions"):
        content = doc["paths"][path]["post"]["responses"]["200"]["content"]
        assert "event: error" in content["text/event-stream"]["schema"]["description"]
    assert "text/event-stream" not in (
        doc["paths"]["/v1/embeddings"]["post"]["responses"]["200"]["content"])


def test_the_gateway_headers_are_documented_on_every_proxied_route(doc: dict[str, Any]):
    for path in PROXIED_POSTS:
        op = doc["paths"][path]["post"]
        params = {p["$ref"].rsplit("/", 1)[1] for p in op["parameters"]}
        assert params == {"XHXModelGroup", "XRequestID", "Traceparent", "Tracestate"}, path
        assert set(op["responses"]["200"]["headers"]) == {
            "X-Request-ID", "X-HX-Model", "X-HX-Group", "X-HX-Failovers", "X-HX-Route"}, path


def test_request_bodies_stay_loose_but_name_the_fields_the_gateway_reads(doc: dict[str, Any]):
    schemas = doc["components"]["schemas"]
    reads = {"ChatCompletionRequest": {"model", "stream", "stream_options", "messages"},
             "CompletionRequest": {"model", "stream", "stream_options", "prompt"},
             "EmbeddingRequest": {"model", "input"}}
    for name, fields in reads.items():
        assert set(schemas[name]["properties"]) == fields, name
        assert schemas[name]["additionalProperties"] is True, name
        assert "required" not in schemas[name], name


def test_upload_routes_take_a_form_and_speech_answers_audio(doc: dict[str, Any]):
    for path in ("/v1/audio/transcriptions", "/v1/audio/translations", "/v1/images/edits",
                 "/v1/images/variations"):
        assert set(doc["paths"][path]["post"]["requestBody"]["content"]) == {
            "multipart/form-data"}, path
    speech = doc["paths"]["/v1/audio/speech"]["post"]["responses"]["200"]["content"]
    assert set(speech) == {"audio/mpeg"}
