"""Moderation and rerank as the fake upstream answers them: OpenAI's moderation object
(`results` with `flagged`, `categories`, `category_scores` and the input types each
category was applied to) and Cohere's rerank, as LiteLLM serves it (`results` of
`index` and `relevance_score`, best first, and `meta`)."""

from __future__ import annotations

from typing import Any

CATEGORIES = ("harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
              "illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent",
              "sexual", "sexual/minors", "violence", "violence/graphic")


def moderation(body: Any) -> dict[str, Any]:
    given = body.get("input") if isinstance(body, dict) else None
    inputs = given if isinstance(given, list) else [given]
    results = []
    for text in inputs:
        flagged = "attack" in str(text)
        results.append({
            "flagged": flagged,
            "categories": {c: flagged and c == "violence" for c in CATEGORIES},
            "category_scores": {c: 0.91 if flagged and c == "violence" else 0.0001
                                for c in CATEGORIES},
            "category_applied_input_types": {c: ["text"] for c in CATEGORIES},
        })
    return {"id": "modr-fake01", "model": body.get("model"), "results": results}


def rerank(body: Any) -> dict[str, Any]:
    query = str(body.get("query", "")) if isinstance(body, dict) else ""
    documents = body.get("documents", []) if isinstance(body, dict) else []
    words = set(query.lower().split())
    scored = [(len(words & set(str(d).lower().split())) / (len(words) or 1), i)
              for i, d in enumerate(documents)]
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    top = body.get("top_n") or len(scored)
    return {"id": "rerank-fake01",
            "results": [{"index": i, "relevance_score": round(s, 4)} for s, i in scored[:top]],
            "meta": {"api_version": {"version": "1"}, "billed_units": {"search_units": 1}}}
