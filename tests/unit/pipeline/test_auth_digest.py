"""The digest a presented key is looked up by: SHA-256, whichever implementation runs it."""

from __future__ import annotations

import hashlib

import pytest

from hxgw.pipeline.auth import _SHA256


@pytest.mark.parametrize("key", [b"", b"sk-master-1234", "sk-clé-ü".encode(), b"k" * 1000])
def test_the_key_digest_is_hashlib_s_sha256(key: bytes):
    assert _SHA256(key).digest() == hashlib.sha256(key).digest()
