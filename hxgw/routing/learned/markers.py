"""Whole-prompt features: code and maths markers, length, line count, digit and
operator share, and the share and kind of non-ASCII script.

Each feature has a name (``m:fence``, ``l:short``, ``s:cyrillic``) and a bucket,
the crc32 of its name. The set of names is small and fixed, so every bucket is
computed once, here; ``buckets`` only looks them up, and ``names`` maps them
back for explanations, so the two can never disagree.

Why gates: one-byte markers are found together in one C pass
(``bytes.translate`` deletes every other byte); a longer marker is searched
for only if its rarest byte (its "gate") was seen in that pass, so plain prose
skips most searches. Keywords such as "def" or "import" are words already.
"""

import bisect
import math
import re

from hxgw.routing.learned.hashing import bucket

CHAR_MARKERS = {
    "{": "brace",
    ";": "semicolon",
    "$": "dollar",
    "\t": "tab",
    "`": "backtick",
    "^": "caret",
    "=": "equals",
    "+": "plus",
    "/": "slash",
    "*": "star",
    "?": "question",
    '"': "quote",
}
TEXT_MARKERS = {
    "```": ("fence", "`"),
    "=>": ("arrow", ">"),
    "->": ("thin-arrow", ">"),
    "()": ("call", "("),
    "==": ("eqeq", "="),
    "!=": ("neq", "!"),
    "&&": ("and-and", "&"),
    "||": ("or-or", "|"),
    "</": ("tag", "<"),
    "//": ("comment", "/"),
    "\n    ": ("indent", "\n"),
    ":\n": ("colon-newline", ":"),
    "\n\n": ("paragraph", "\n"),
    "\n- ": ("bullet", "-"),
}
UNICODE_MARKERS = {
    "√": "root",
    "∫": "integral",
    "∑": "sum",
    "π": "pi",
    "²": "squared",
    "“": "smart-quote",
}
SCRIPTS = {
    "latin-accent": (0x00C0, 0x024F),
    "greek": (0x0370, 0x03FF),
    "cyrillic": (0x0400, 0x04FF),
    "hebrew": (0x0590, 0x05FF),
    "arabic": (0x0600, 0x06FF),
    "devanagari": (0x0900, 0x097F),
    "thai": (0x0E00, 0x0E7F),
    "kana": (0x3040, 0x30FF),
    "cjk": (0x4E00, 0x9FFF),
    "hangul": (0xAC00, 0xD7AF),
}
"""Each script's first and last code point."""
LENGTHS = ((20, "tiny"), (60, "short"), (150, "medium"), (400, "long"), (1000, "longer"))
LINES = ("0", "1", "2", "3", "3", "3", "3", "3", "3", "3", "many")
"""``n:`` by newline count: 0 to 2 as they are, 3 to 9 as "3", 10 or more as "many"."""
SHARES = ("none", "low", "mid", "high")

_DIGITS = b"0123456789"
_MATH = b"+-*/=^%<>()"


def _named(name: str) -> int:
    found = bucket(name)
    _NAMES.setdefault(found, name)
    return found


_NAMES: dict[int, str] = {}
_CHARS = {ord(c): _named(f"m:{name}") for c, name in CHAR_MARKERS.items()}
_GATES: dict[int, list[tuple[str, int]]] = {}
for _needle, (_name, _gate) in TEXT_MARKERS.items():
    _GATES.setdefault(ord(_gate), []).append((_needle, _named(f"m:{_name}")))
_NOT_SEEN = bytes(b for b in range(256) if b not in _CHARS and b not in _GATES)
_UNICODE = [(c, _named(f"m:{name}")) for c, name in UNICODE_MARKERS.items()]
_SCRIPTS = [
    (
        frozenset(range(chr(lo).encode()[0], chr(hi).encode()[0] + 1)),
        re.compile(f"[{chr(lo)}-{chr(hi)}]"),
        _named(f"s:{name}"),
    )
    for name, (lo, hi) in SCRIPTS.items()
]
"""(UTF-8 lead bytes of the script's characters, its pattern, its bucket): a pattern
is searched for only if one of its lead bytes is in the text, so a text in one
script does not scan itself ten times."""
_NOT_LEAD = bytes(range(0xC0))
_LIMITS = [limit for limit, _ in LENGTHS]
_SIZES = [_named(f"l:{size}") for _, size in LENGTHS] + [_named("l:huge")]
_LINES = [_named(f"n:{lines}") for lines in LINES]
_SHARE_LIMITS = [math.ulp(0.0), 0.05, 0.2]
"""``bisect`` of a share gives its ``SHARES`` index: none, under 5%, under 20%, more."""
_GATED = frozenset(_GATES)
_DIGIT_SHARE, _MATH_SHARE, _WIDE_SHARE = (
    [_named(f"{kind}:{share}") for share in SHARES] for kind in "dou"
)


def buckets(text: str) -> list[int]:
    """The buckets of ``text``'s whole-prompt features."""
    raw = text.encode()
    size = len(raw)
    seen = set(raw.translate(None, _NOT_SEEN))
    out = [_CHARS[b] for b in seen if b in _CHARS]
    for gate in seen & _GATED:
        for needle, found in _GATES[gate]:
            if needle in text:
                out.append(found)
    out.append(_SIZES[bisect.bisect_left(_LIMITS, len(text))])
    out.append(_LINES[min(text.count("\n"), 10)])
    if size:
        digits = size - len(raw.translate(None, _DIGITS))
        maths = size - len(raw.translate(None, _MATH))
        out.append(_DIGIT_SHARE[bisect.bisect(_SHARE_LIMITS, digits / size)])
        out.append(_MATH_SHARE[bisect.bisect(_SHARE_LIMITS, maths / size)])
        out.append(_WIDE_SHARE[bisect.bisect(_SHARE_LIMITS, (size - len(text)) / size)])
    else:
        out += (_DIGIT_SHARE[0], _MATH_SHARE[0], _WIDE_SHARE[0])
    if not text.isascii():
        out += [found for char, found in _UNICODE if char in text]
        leads = set(raw.translate(None, _NOT_LEAD))
        out += [found for lead, pattern, found in _SCRIPTS if lead & leads and pattern.search(text)]
    return out


def names(text: str) -> list[str]:
    """The names of ``buckets(text)``, in the same order."""
    return [_NAMES[found] for found in buckets(text)]
