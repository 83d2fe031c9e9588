"""The `hxgw` command: serve, check-config, keys, usage, quickstart, demo-upstream.

Exit codes: 0 success, 1 invalid config or a failure (to start; a key the store lacks), 2 bad
usage (what is wrong whatever the machine holds).
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from hxgw import __version__
from hxgw.lifecycle.start_signals import EarlyReload

DEFAULT_CONFIG_DIR = "/etc/hxgw"


def _digits(text: str) -> int | None:
    """`text` as a count in plain ASCII digits; None for anything else (int() reads a
    full-width digit and "1_0" too)."""
    return int(text) if text.isascii() and text.isdigit() else None


def _port(text: str) -> int:
    port = _digits(text)
    if port is None:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return port


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < math.inf:  # 0 would wait for ever, as would NaN
        raise argparse.ArgumentTypeError(f"not a number of seconds above 0: {text!r}")
    return seconds


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    count = _digits(text)
    if count is None:
        raise argparse.ArgumentTypeError(f"not 1-256 or auto: {text!r}")
    if not 1 <= count <= 256:
        raise argparse.ArgumentTypeError(f"not 1-256 or auto: {count}")
    return count


STORE_HELP = (
    "The store is the serving gateway's: PostgreSQL when DATABASE_URL is set, else hxgw.db in"
    " the state directory ($HX_STATE_DIR, else gateway.yaml's store.state_dir, else"
    " /var/lib/hxgw). Run it with the service's DATABASE_URL or HX_STATE_DIR, as root or as"
    " the service's user."
)


def _parser() -> argparse.ArgumentParser:
    from hxgw.tools import check_config, keys_args, quickstart, train_router, usage_cli

    parser = argparse.ArgumentParser(
        prog="hxgw",
        description="HX Gateway: a streaming gateway in front of an OpenAI-compatible upstream.",
    )
    parser.add_argument("--version", action="version", version=f"hxgw {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    config_help = f"config directory (default: $HX_CONFIG_DIR or {DEFAULT_CONFIG_DIR})"

    def command(name: str, summary: str, epilog: str | None = None) -> argparse.ArgumentParser:
        # help= lists it under `hxgw --help`; description= heads its own --help.
        return commands.add_parser(name, help=summary, description=summary, epilog=epilog)

    serve = command("serve", "run the gateway")
    serve.add_argument("--config-dir", help=config_help)
    serve.add_argument(
        "--host",
        help="listen address (default: $HX_HOST, else gateway.yaml's listen.host, else 0.0.0.0)",
    )
    serve.add_argument(
        "--port",
        type=_port,
        help="listen port (default: $HX_PORT, else gateway.yaml's listen.port, else 4010)",
    )
    serve.add_argument(
        "--workers",
        type=_workers,
        help="processes to serve with: a number or auto (default: gateway.yaml `workers`, else 1)",
    )
    serve.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)  # set by the supervisor

    check = command("check-config", "validate the config and say what is wrong")
    check.add_argument("--config-dir", help=config_help)
    check_config.add_arguments(check)

    route = command("route", "read a request body on stdin and print how it would be routed")
    route.add_argument("--config-dir", help=config_help)
    route.add_argument(
        "--endpoint",
        # The routes whose JSON body alone says where they go, by their endpoints' names.
        choices=("chat", "completions", "embeddings", "messages", "responses"),
        default="chat",
        help="the route the body is for (default: chat)",
    )
    route.add_argument("--group", help="as if sent with X-HX-Model-Group: GROUP")
    route.add_argument("--json", action="store_true", help="machine-readable output")
    check_config.add_arguments(route, "route")

    train_router.add_arguments(
        command("train-router", "train the ml-based-routing task classifier on labelled prompts")
    )
    # Its options are here, its module (and aiohttp's client) imported only when it runs:
    # a tenth of a second off every other command's start.
    smoke = command(
        "smoke", "check a running gateway end to end (key from MASTER_KEY or --key-file)"
    )
    smoke.add_argument(
        "--url",
        help="the gateway (default: this machine's, on $HX_PORT, else the listen address of"
        " gateway.yaml in the config directory, else port 4010)",
    )
    smoke.add_argument("--config-dir", help=config_help)
    smoke.add_argument("--key-file", help="a file holding only the client key")
    smoke.add_argument(
        "--timeout", type=_seconds, default=30.0, help="seconds per request (default: 30)"
    )
    smoke.add_argument("--json", action="store_true", help="print a JSON report")

    keys_args.add_arguments(
        command(
            "keys", "make, list, change, rotate and revoke client keys in the store", STORE_HELP
        ),
        config_help,
    )
    keys_args.add_team_arguments(
        command("teams", "make, list, change and delete teams: limits keys share", STORE_HELP),
        config_help,
    )
    usage_cli.add_arguments(
        command("usage", "what each key (model, day) used, from the usage ledger", STORE_HELP),
        config_help,
    )

    quickstart.add_arguments(
        command(
            "quickstart",
            "run the gateway (its key MASTER_KEY, else one made once and kept in HX_STATE_DIR)"
            " in front of the demo upstream unless HX_LITELLM_UPSTREAM names one (what `make "
            "run` runs)",
        )
    )
    demo = command("demo-upstream", "run a deterministic OpenAI-compatible fake upstream")
    demo.add_argument("--host", default="127.0.0.1", help="listen address (default: 127.0.0.1)")
    demo.add_argument("--port", type=_port, default=4000, help="listen port (default: 4000)")
    demo.add_argument(
        "--chunk-delay",
        type=float,
        default=0.05,
        help="seconds between streamed chunks (default: 0.05)",
    )
    demo.add_argument(
        "--embedding-dim", type=int, default=1024, help="numbers per embedding (default: 1024)"
    )
    return parser


def _refuse_unknown(
    parser: argparse.ArgumentParser, args: argparse.Namespace, unknown: list[str]
) -> NoReturn:
    """Exit 2 with the usage of the (sub)command the unknown arguments were given to, and
    the option each one most likely meant: argparse says it with the usage of `hxgw`
    alone, which names no option of `hxgw keys create`."""
    while True:
        chosen = [
            action.choices[getattr(args, action.dest)]
            for action in parser._actions
            if isinstance(action, argparse._SubParsersAction) and getattr(args, action.dest, None)
        ]
        if not chosen:
            break
        parser = chosen[0]
    known = [option for action in parser._actions for option in action.option_strings]
    hints = []
    for argument in unknown:
        close = difflib.get_close_matches(argument.partition("=")[0], known, n=1)
        if argument.startswith("-") and close:
            hints.append(f"{argument}: did you mean {close[0]}?")
    said = " ".join(unknown) + (f" ({'; '.join(hints)})" if hints else "")
    parser.error(f"unrecognized arguments: {said}")


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    # `hxgw serve` catches SIGHUP from its first moment: its imports take most of a
    # second, and until a handler is set SIGHUP's default ends the process (exit 129,
    # which systemd counts as clean and does not restart). So the tools, which import the
    # config's reader, are imported only after it, when a command needs them.
    early = EarlyReload(worker="--listen-fd" in words) if words[:1] == ["serve"] else None
    try:
        return _command(argv, early)
    except BrokenPipeError:
        # Its output was piped into a reader that stopped (`| head`): not an error of ours,
        # and the interpreter must not try again to flush into the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _command(argv: Sequence[str] | None, early: EarlyReload | None = None) -> int:
    from hxgw.tools import check_config, keys_cli, quickstart, teams_cli, train_router, usage_cli

    parser = _parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help()  # `hxgw` alone: what it can do, not only what it lacks
        return 2
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _refuse_unknown(parser, args, unknown)
    env = dict(os.environ)
    config_dir = getattr(args, "config_dir", None) or env.get("HX_CONFIG_DIR") or DEFAULT_CONFIG_DIR
    if args.command == "serve":
        from hxgw.lifecycle.override import Override
        from hxgw.lifecycle.serve import serve

        override = Override(host=args.host, port=args.port, workers=args.workers)
        return serve(
            config_dir, env, override, workers=args.workers, listen_fd=args.listen_fd, early=early
        )
    if args.command == "check-config":
        from hxgw.observe import on_journal

        return check_config.run(config_dir, env, args.env_file, journal=on_journal(sys.stderr))
    if args.command == "route":
        from hxgw.tools.route import main as route_main

        return route_main(
            config_dir, env, args.env_file, args.endpoint, args.group, as_json=args.json
        )
    if args.command == "train-router":
        return train_router.run(args)
    if args.command == "smoke":
        from hxgw.tools import smoke

        return smoke.run(args, config_dir, env)
    if args.command == "usage":
        return usage_cli.run(args, config_dir, env)
    if args.command == "keys":
        return keys_cli.run(args, config_dir, env)
    if args.command == "teams":
        return teams_cli.run(args, config_dir, env)
    if args.command == "quickstart":
        return quickstart.run(args, env)
    if args.command == "demo-upstream":
        from hxgw.tools.demo_upstream import run

        return run(args.host, args.port, args.chunk_delay, args.embedding_dim)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
