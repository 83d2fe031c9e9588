"""Feature names and words to bucket numbers, the same in every process.

Why crc32: Python's ``hash()`` is salted per process, so a model trained in one
process would be garbage in the next; crc32 is stable everywhere and runs in C.
"""

import zlib

N_BUCKETS = 1 << 18
MASK = N_BUCKETS - 1


def stable_hash(data: bytes) -> int:
    """crc32: identical in every process and on every machine, unlike ``hash()``."""
    return zlib.crc32(data)


def bucket(name: str) -> int:
    """The bucket of a named feature such as ``w:python`` or ``l:short``."""
    return stable_hash(name.encode()) & MASK
