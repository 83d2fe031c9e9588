"""`hxgw route`: show, without calling any upstream, how a request would be routed."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from hxgw import jsonio
from hxgw.config import ClientKey, Config, Model, load_config
from hxgw.config.reader import kind_of
from hxgw.endpoints import PROXIED
from hxgw.errors import ConfigError, GatewayError, did_you_mean
from hxgw.routing.decision import Decision, decide
from hxgw.routing.learned.loading import load_classifier
from hxgw.routing.learned.prompt import prompt_text
from hxgw.routing.routes import Routes
from hxgw.routing.strategies import Memory
from hxgw.tools.check_config import SERVICE_ENV_FILE, with_env_file
from hxgw.upstream.affinity import unbind

PREVIOUS = "previous_response_id"
_BY_NAME = {endpoint.name: endpoint for endpoint in PROXIED}
# Explaining is not serving: no client key is involved, every group may be asked about.
_ANY_KEY = ClientKey(name="hxgw-route", digest=b"")


def explain(
    config_dir: str, env: Mapping[str, str], raw: str, endpoint: str, group: str | None
) -> dict[str, Any]:
    """The route report for one request body; raises ConfigError or GatewayError."""
    config = load_config(config_dir, env, serving=False)
    if not raw.strip():
        raise GatewayError(
            "no request body on standard input: pipe one in, e.g. echo "
            """'{"messages":[{"role":"user","content":"hi"}]}' | hxgw route"""
        )
    try:
        body = jsonio.loads(raw)
    except jsonio.DecodeError as exc:
        raise GatewayError(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise GatewayError("the request body must be a JSON object")
    model = body.get("model")
    if model is not None and not isinstance(model, str):  # as `serve` refuses it
        raise GatewayError(f"'model' must be a string, got {kind_of(model, json=True)}")
    groups = config.routing.groups
    if group is not None and group not in groups:  # as --group, not the header it stands for
        raise GatewayError(
            f"--group {group!r}: no such group{did_you_mean(group, groups)}; groups: "
            f"{', '.join(sorted(groups))}"
        )
    route = Routes(config).resolve(group, model, _ANY_KEY, _BY_NAME[endpoint].mode)
    classifier = load_classifier(config.routing.classifier)
    decision = decide(config, route, body, Memory(), classifier)
    follow_up = _follow_up(config, body) if endpoint == "responses" else None
    if follow_up is not None:  # as serve sends it: where its state lives, whatever the order
        decision = Decision("pinned", (follow_up,))
    prompt = prompt_text(body)
    # The classifier's view even where the strategy did not ask for it, but for an
    # embedding's input: serve never classifies one, and its task would read as the why.
    task = decision.task or (classifier.predict_proba(prompt) if route.classified else {})
    likeliest = max(task, key=task.__getitem__) if task else None
    scored = {s.model.name: s for s in decision.scored}
    candidates = []
    for position, candidate in enumerate(decision.candidates):
        entry = scored.get(candidate.name)
        candidates.append(
            {
                "model": candidate.name,
                "score": round(entry.score, 4) if entry else None,
                "reasons": list(entry.reasons)
                if entry
                else [f"made the previous response ({PREVIOUS})"]
                if follow_up
                else [f"{decision.strategy} order, position {position + 1}"],
            }
        )
    return {
        "group": route.group,
        "strategy": decision.strategy,
        "task": {label: round(p, 4) for label, p in sorted(task.items(), key=lambda i: -i[1])},
        "task_decided": decision.task is not None,  # else only the classifier's view
        # What in the prompt pushed hardest towards that task, for a surprising one.
        "task_signals": [
            {"feature": name, "weight": round(weight, 3)}
            for name, weight in (classifier.top_features(prompt, likeliest, 5) if likeliest else ())
        ],
        "candidates": candidates,
        "skipped": [{"model": m, "reason": r} for m, r in decision.skipped],
        "header": decision.header(),
    }


def _follow_up(config: Config, body: dict[str, Any]) -> Model | None:
    """The model a Responses follow-up goes to, refused as serve refuses it
    (hxgw.pipeline.affinity): the one that made its previous response."""
    previous = body.get(PREVIOUS)
    if previous is None:
        return None
    if not isinstance(previous, str):
        raise GatewayError(f"'{PREVIOUS}' must be a string")
    bound = unbind(previous)
    if bound is None or bound.kind != "model":
        raise GatewayError(f"Response with id {previous!r} not found: this gateway did not make it")
    model = config.models.get(bound.target)
    if model is None:
        raise GatewayError(
            f"response {previous!r} was made by model {bound.target!r}, which this gateway "
            "no longer serves: its state cannot be reached"
        )
    return model


def main(
    config_dir: str,
    env: Mapping[str, str],
    env_file: str | None,
    endpoint: str,
    group: str | None,
    as_json: bool,
) -> int:
    """`env_file`: the service's variables, which a config's `key_env` may name; routing
    uses no secret, but the config loads only with them set."""
    given = with_env_file("route", env, env_file)
    if given is None:
        return 1
    if sys.stdin.isatty():  # else it waits without a word for what it never said it wants
        print("hxgw route: type a request body (JSON), then Ctrl-D", file=sys.stderr)
    try:
        report = explain(config_dir, given, sys.stdin.read(), endpoint, group)
    except ConfigError as exc:
        print(f"{config_dir}: invalid config\n  " + str(exc).replace("\n", "\n  "), file=sys.stderr)
        if env_file is None and "is not set" in str(exc):
            print(
                "note: this shell may lack the service's variables: route with them by "
                f"hxgw route --env-file {SERVICE_ENV_FILE}",
                file=sys.stderr,
            )
        return 1
    except GatewayError as exc:
        print(f"hxgw route: {exc.message}", file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(report, indent=2) + "\n" if as_json else text(report))
    return 0


def text(report: dict[str, Any]) -> str:
    """The report as an operator reads it: the decision first, then why."""
    task = ", ".join(f"{label} {p:.2f}" for label, p in report["task"].items())
    task = task or "- (an embedding's input is not classified)"
    if report["task"] and not report["task_decided"]:
        task += f" (the classifier's view: {report['strategy']} does not ask it)"
    signals = ", ".join(f"{s['feature']} ({s['weight']:+.2f})" for s in report["task_signals"])
    lines = [
        f"group      {report['group'] or '- (a pinned model)'}",
        f"strategy   {report['strategy']}",
        f"task       {task}",
        f"signals    {signals or '-'}",
        "tried in this order:",
    ]
    width = max((len(c["model"]) for c in report["candidates"]), default=0)
    for position, candidate in enumerate(report["candidates"], 1):
        score = "-" if candidate["score"] is None else f"{candidate['score']:.2f}"
        reasons = "; ".join(candidate["reasons"])
        lines.append(f"  {position}. {candidate['model']:<{width}}  {score:>6}  {reasons}")
    lines.extend(f"skipped    {s['model']}: {s['reason']}" for s in report["skipped"])
    lines.append(f"X-HX-Route: {report['header']}")
    return "\n".join(lines) + "\n"
