"""What setup.cfg lets pip install."""

from __future__ import annotations

import configparser

from packaging.requirements import Requirement

from tests.fixtures import REPO


def test_no_aiohttp_with_a_known_request_smuggling_flaw_may_be_installed():
    # 3.10.11 (GHSA-8495-4g3g-x7pr, chunk extensions) and 3.12.14 (GHSA-9548-qrrj-x5pj,
    # trailers) fixed request smuggling in its parser; the gateway is what parses clients.
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    requires = [Requirement(line.strip()) for line in config["options"]["install_requires"].splitlines() if line.strip()]
    (aiohttp,) = [r for r in requires if r.name == "aiohttp"]
    for version in ("3.9.5", "3.10.10", "3.12.13"):
        assert not aiohttp.specifier.contains(version)
    assert aiohttp.specifier.contains("3.12.14")
