"""An EnvironmentFile as systemd reads it (the service's `/etc/hx-gateway-ml.env`), and
whether it holds a secret, which every user of the machine must not read."""

from __future__ import annotations

import re
from pathlib import Path

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)$", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"://[^/@:]*:[^/@]+@")
"""A URL with a password in it: `postgresql://hxgw:pw@db/hxgw`, `redis://:pw@host`."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd reads an EnvironmentFile: `#` and `;` lines are
    comments, a value may be in single or double quotes. Raises ValueError naming the
    first line that is none of these."""
    variables: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        name, equals, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not name.isidentifier():
            raise ValueError(f"line {number} is not NAME=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        variables[name] = value
    return variables


def holds_secret(path: Path) -> bool:
    """Whether the file sets a key, token or password (by its variable's name, as
    MASTER_KEY and HX_UPSTREAM_KEY), or a URL with a password in it; one this process
    cannot read or make out may, so it counts as one that does."""
    try:
        variables = read_env_file(path)
    except (OSError, ValueError, UnicodeDecodeError):
        return True
    return any(_secret(name, value) for name, value in variables.items())


def _secret(name: str, value: str) -> bool:
    return bool(value) and (bool(_SECRET_NAME.search(name)) or bool(_URL_PASSWORD.search(value)))
