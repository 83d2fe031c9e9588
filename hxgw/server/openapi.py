"""The gateway's OpenAPI 3.1 document, as served at GET /openapi.json.

The document lives beside this module as `openapi.json` (the one kept in the
repository and reviewed); only `info.version` is filled in here, from the
package, so the served document always names the running version.
"""

from __future__ import annotations

import functools
import importlib.resources
from typing import Any

from hxgw import __version__, jsonio

RESOURCE = "openapi.json"


def load_document() -> dict[str, Any]:
    """A fresh copy of the document, with `info.version` set to this package's version."""
    raw = importlib.resources.files("hxgw.server").joinpath(RESOURCE).read_bytes()
    document: dict[str, Any] = jsonio.loads(raw)
    document["info"]["version"] = __version__
    return document


@functools.cache
def openapi_bytes() -> bytes:
    """The served document: read and encoded once per process."""
    return jsonio.dumps(load_document())
