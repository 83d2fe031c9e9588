"""Case 6: the routing decision alone, in microseconds per request, in-process.

The hook: a module `hxgw.routing.learned.bench` with
`routing_timings(iterations: int) -> dict[str, float]` (name -> microseconds per
decision) is used as it is, when it exists. Without it, this times what
`hxgw.routing.decision` offers today on a small ml-based-routing config: `resolve`
(group -> candidates) and, when present, `decide` (the strategy's ordering,
the task classifier included). Anything missing or failing is reported as n/a
with the reason; the routing case never stops the benchmark.
"""

from __future__ import annotations

import importlib
import importlib.util
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROUTING_YAML = """\
routing:
  strategy: ml-based-routing
  default_group: hx-chat
  failover_order: [chat-small]
  groups:
    hx-chat: [coder, writer, chat-small]
"""
REGISTRY_YAML = """\
models:
  - {name: coder, tier_score: 0.9, specializations: [coding, analysis, math]}
  - {name: writer, tier_score: 0.8, specializations: [writing, summarization, translation]}
  - {name: chat-small, tier_score: 0.5, specializations: [chat]}
"""
PROMPTS = (
    "Write a Python function that merges two sorted lists and explain its complexity.",
    "Summarize the following paragraph in two sentences: the committee met on Tuesday "
    "to discuss the budget, the new hires and the plan for the spring release.",
    "hi, how are you today?",
    "Translate 'where is the train station' into German and French.",
)


def _time_us(call: Callable[[], object], iterations: int) -> float:
    """Median of 5 batches, microseconds per call (after one warm-up call)."""
    call()
    batch = max(1, iterations // 5)
    per_call = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(batch):
            call()
        per_call.append((time.perf_counter() - started) / batch * 1e6)
    return round(statistics.median(per_call), 2)


def run(config_dir: Path, master_key: str, iterations: int, chat_body: bytes) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    if importlib.util.find_spec("hxgw.routing.learned.bench") is not None:
        try:
            hook = importlib.import_module("hxgw.routing.learned.bench")
            timings = hook.routing_timings(iterations)
            rows += [{"name": str(k), "us": float(v)} for k, v in timings.items()]
            return {"source": "hxgw.routing.learned.bench.routing_timings", "rows": rows}
        except Exception as exc:
            rows.append({"name": "hxgw.routing.learned.bench", "us": None, "error": repr(exc)[:200]})
    try:
        rows += _from_routing_module(config_dir.parent / "routing-config", master_key, iterations)
        source = "hxgw.routing.decision (no hxgw.routing.learned.bench hook)"
    except Exception as exc:
        rows.append({"name": "ml-based-routing decision", "us": None, "error": repr(exc)[:200]})
        source = "n/a"
    return {"source": source, "rows": rows}


def _from_routing_module(directory: Path, master_key: str, iterations: int) -> list[dict[str, Any]]:
    from hxgw.config import load_config
    from hxgw.routing import decision as routing

    directory.mkdir(mode=0o700, exist_ok=True)
    for name, text in (("routing.yaml", ROUTING_YAML), ("model_registry.yaml", REGISTRY_YAML)):
        (directory / name).write_text(text)
        (directory / name).chmod(0o600)
    config = load_config(str(directory), {"MASTER_KEY": master_key})
    key = config.keys[0]
    resolve = _resolver(config)
    rows = [
        {
            "name": "resolve: group -> candidates",
            "us": _time_us(lambda: resolve(None, "hx-chat", key, "chat"), iterations),
        }
    ]
    decide = getattr(routing, "decide", None)
    if decide is None:
        rows.append({"name": "ml-based-routing decision", "us": None, "error": "no routing.decide"})
        return rows
    try:
        from hxgw.routing.learned.loading import load_classifier
    except ImportError:  # a build before 2026-12-05
        from hxgw.routing.classify import load_classifier  # type: ignore[no-redef]
    from hxgw.routing.strategies import Memory

    memory = Memory()
    memory.health.configure(config.routing.health, config.models)
    classifier = load_classifier(config.routing.classifier)
    route = resolve(None, "hx-chat", key, "chat")
    bodies = [
        orjson.loads(
            orjson.dumps({"model": "hx-chat", "messages": [{"role": "user", "content": p}]})
        )
        for p in PROMPTS
    ]
    timings = [
        _time_us(lambda b=b: decide(config, route, b, memory, classifier), iterations // 4)
        for b in bodies
    ]
    rows.append(
        {
            "name": "ml-based-routing decide (warm, 4 prompts)",
            "us": round(statistics.fmean(timings), 2),
        }
    )
    rows.append(
        {
            "name": "resolve + decide",
            "us": round(rows[0]["us"] + rows[-1]["us"], 2),
        }
    )
    return rows


def _resolver(config: Any) -> Any:
    """`resolve` as a build has it: a method of the config's `Routes` (since 2026-12-05),
    or a function of the config before."""
    try:
        from hxgw.routing.routes import Routes
    except ImportError:
        from hxgw.routing import decision

        return lambda *args: decision.resolve(config, *args)  # type: ignore[attr-defined]
    return Routes(config).resolve
