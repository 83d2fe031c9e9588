"""Moderation and rerank as the demo upstream (and the tests' fake one) answers them:
OpenAI's moderation object (`results` with `flagged`, `categories`, `category_scores`
and the input types each category was applied to) and Cohere's rerank, as LiteLLM
serves it (`results` of `index` and `relevance_score`, best first, and `meta`).

An input is flagged for violence when it says "attack"; a document's relevance is the
share of the query's words it holds.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from hxgw.tools.demo_answers import json_body

CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


def moderation(body: dict[str, Any]) -> dict[str, Any]:
    given = body.get("input")
    results = []
    for text in given if isinstance(given, list) else [given]:
        flagged = "attack" in str(text)
        results.append(
            {
                "flagged": flagged,
                "categories": {c: flagged and c == "violence" for c in CATEGORIES},
                "category_scores": {
                    c: 0.91 if flagged and c == "violence" else 0.0001 for c in CATEGORIES
                },
                "category_applied_input_types": {c: ["text"] for c in CATEGORIES},
            }
        )
    ident = "modr-demo" + secrets.token_hex(12)
    return {"id": ident, "model": body.get("model"), "results": results}


def rerank(body: dict[str, Any]) -> dict[str, Any]:
    words = set(str(body.get("query", "")).lower().split())
    documents = body.get("documents")
    scored = [
        (len(words & set(str(d).lower().split())) / (len(words) or 1), i)
        for i, d in enumerate(documents if isinstance(documents, list) else [])
    ]
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    top = body.get("top_n")
    top = top if isinstance(top, int) and top > 0 else len(scored)
    return {
        "id": "rerank-demo" + secrets.token_hex(12),
        "results": [{"index": i, "relevance_score": round(s, 4)} for s, i in scored[:top]],
        "meta": {"api_version": {"version": "1"}, "billed_units": {"search_units": 1}},
    }


async def moderations(request: web.Request) -> web.Response:
    return web.json_response(moderation(await json_body(request)))


async def reranked(request: web.Request) -> web.Response:
    return web.json_response(rerank(await json_body(request)))
