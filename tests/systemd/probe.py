"""HTTP probes run inside the test machine with its /usr/bin/python3 (stdlib only).

    probe.py wait URL [SECONDS]          until GET URL answers 200
    probe.py get URL                     one GET: {"status", "body"} or {"error"}
    probe.py chat PROMPT [--stream] [--no-key] [--key-file FILE] [--progress FILE]
                                         POST /v1/chat/completions to the gateway
                                         with MASTER_KEY from /etc/hx-gateway-ml.env
                                         (or the key alone in FILE)

Prints one JSON object. The key is read from the env file here, so it never
shows in a command line. With --progress, the number of stream chunks read so
far is written to FILE as they arrive.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
import urllib.error
import urllib.request

GATEWAY = ("127.0.0.1", 4010)
ENV_FILE = "/etc/hx-gateway-ml.env"


def master_key() -> str:
    with open(ENV_FILE, encoding="utf-8") as f:
        for line in f:
            if line.startswith("MASTER_KEY="):
                return line.split("=", 1)[1].strip()
    raise SystemExit(f"no MASTER_KEY in {ENV_FILE}")


def get(url: str) -> dict[str, object]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return {"status": resp.status, "body": resp.read().decode()}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "body": exc.read().decode()}
    except OSError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def wait(url: str, seconds: float) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while True:
        result = get(url)
        if result.get("status") == 200 or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def chat(
    prompt: str, stream: bool, key: bool, progress: str | None, key_file: str | None = None
) -> dict[str, object]:
    body = {
        "model": "hx-chat",
        "messages": [{"role": "user", "content": prompt}],
        "stream": stream,
    }
    headers = {"Content-Type": "application/json"}
    if key:
        if key_file:
            with open(key_file, encoding="utf-8") as f:
                secret = f.read().strip()
        else:
            secret = master_key()
        headers["Authorization"] = f"Bearer {secret}"
    started = time.monotonic()
    conn = http.client.HTTPConnection(*GATEWAY, timeout=60)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
        resp = conn.getresponse()
        result: dict[str, object] = {
            "status": resp.status,
            "content_type": resp.getheader("Content-Type", ""),
        }
        if not stream or resp.status != 200:
            result["body"] = resp.read().decode()
            return result
        text, chunks, done, events = [], 0, False, []
        for raw in resp:
            line = raw.decode().rstrip("\r\n")
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                continue
            event = json.loads(data)
            if "error" in event:
                events.append(event)
                continue
            for choice in event.get("choices", []):
                text.append(choice.get("delta", {}).get("content") or "")
            chunks += 1
            if progress:
                with open(progress, "w", encoding="utf-8") as f:
                    f.write(str(chunks))
        result.update(
            text="".join(text),
            chunks=chunks,
            done=done,
            errors=events,
            seconds=round(time.monotonic() - started, 3),
        )
        return result
    except OSError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait")
    w.add_argument("url")
    w.add_argument("seconds", type=float, nargs="?", default=30)
    g = sub.add_parser("get")
    g.add_argument("url")
    c = sub.add_parser("chat")
    c.add_argument("prompt")
    c.add_argument("--stream", action="store_true")
    c.add_argument("--no-key", action="store_true")
    c.add_argument("--progress")
    c.add_argument("--key-file")
    args = parser.parse_args()
    if args.cmd == "wait":
        result = wait(args.url, args.seconds)
    elif args.cmd == "get":
        result = get(args.url)
    else:
        result = chat(args.prompt, args.stream, not args.no_key, args.progress, args.key_file)
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
