"""Turn a prompt into hashed feature buckets, cheaply and reproducibly.

Features: lower-cased words, adjacent word pairs, the first and last few words
(marked as such), byte 3-grams inside words, code and maths markers,
length, line count, digit and operator share, and the share and kind of
non-ASCII script. Each is hashed into one of ``N_BUCKETS`` buckets.

Why hashing: the model file stores bucket numbers, not a vocabulary, so it
stays small and any text can be scored without an out-of-vocabulary step.
Why crc32: Python's ``hash()`` is salted per process, so a model trained in one
process would be garbage in the next; crc32 is stable everywhere and runs in C.
Why bytes: ``bytes.translate`` + ``split`` tokenise in C, several times faster
than a regex, and crc32 wants bytes anyway. Non-ASCII text stays UTF-8, so the
"character" n-grams are byte n-grams: the same thing for ASCII, and for other
scripts they still tell one script (and often one language) from another.
Why pairs are built from parts: a word pair's bucket is ``left(a) ^ right(b)``,
two 18-bit numbers cached per word, so pairing costs one C-level xor.
"""

import functools
import re
import string
import zlib
from collections.abc import Iterator, Sequence
from itertools import chain, pairwise, repeat
from operator import xor

N_BUCKETS = 1 << 18
HEAD_CHARS = 2000
TAIL_CHARS = 500
EDGE_WORDS = 8
PAIR_HEAD = 64
PAIR_TAIL = 16
MAX_GRAMS = 24

_MASK = N_BUCKETS - 1
_FNV_PRIME = 16777619
_PAIR_SALT = 0x9E3779B1
_HEAD = (0x85EBCA6B * _FNV_PRIME) & _MASK
_TAIL = (0xC2B2AE35 * _FNV_PRIME) & _MASK
_GRAM_SEED = zlib.crc32(b"c:")
_SLICES3 = [slice(i, i + 3) for i in range(MAX_GRAMS)]

_TABLE = bytearray(range(256))
for _c in string.punctuation:
    if _c != "_":
        _TABLE[ord(_c)] = ord(" ")
for _c in string.ascii_uppercase:
    _TABLE[ord(_c)] = ord(_c.lower())
_WORD_TABLE = bytes(_TABLE)
_DIGITS = b"0123456789"
_MATH = b"+-*/=^%<>()"

# Substrings whose presence says "code", "maths" or "pasted text" better than words.
# One-byte markers are found together in one C pass; a longer marker is searched
# for only if its rarest byte (its "gate") was seen in that pass, so plain prose
# skips most searches. Keywords such as "def" or "import" are words already.
CHAR_MARKERS = {
    "{": "brace", ";": "semicolon", "$": "dollar", "\t": "tab", "`": "backtick",
    "^": "caret", "=": "equals", "+": "plus", "/": "slash", "*": "star",
    "?": "question", '"': "quote",
}  # fmt: skip
TEXT_MARKERS = {
    "```": ("fence", "`"), "=>": ("arrow", ">"), "->": ("thin-arrow", ">"),
    "()": ("call", "("), "==": ("eqeq", "="), "!=": ("neq", "!"), "&&": ("and-and", "&"),
    "||": ("or-or", "|"), "</": ("tag", "<"), "//": ("comment", "/"),
    "\n    ": ("indent", "\n"), ":\n": ("colon-newline", ":"), "\n\n": ("paragraph", "\n"),
    "\n- ": ("bullet", "-"),
}  # fmt: skip
UNICODE_MARKERS = {"√": "root", "∫": "integral", "∑": "sum", "π": "pi", "²": "squared",
                   "“": "smart-quote"}  # fmt: skip
_CHAR_NAMES = {ord(c): f"m:{name}" for c, name in CHAR_MARKERS.items()}
_GATED = tuple((needle, f"m:{name}", ord(gate)) for needle, (name, gate) in TEXT_MARKERS.items())
_SEEN = set(_CHAR_NAMES) | {gate for _, _, gate in _GATED}
_NOT_SEEN = bytes(b for b in range(256) if b not in _SEEN)
_UNICODE_NAMES = tuple((needle, f"m:{name}") for needle, name in UNICODE_MARKERS.items())

_SCRIPTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("latin-accent", re.compile("[\u00c0-\u024f]")),
    ("greek", re.compile("[\u0370-\u03ff]")),
    ("cyrillic", re.compile("[\u0400-\u04ff]")),
    ("hebrew", re.compile("[\u0590-\u05ff]")),
    ("arabic", re.compile("[\u0600-\u06ff]")),
    ("devanagari", re.compile("[\u0900-\u097f]")),
    ("thai", re.compile("[\u0e00-\u0e7f]")),
    ("kana", re.compile("[\u3040-\u30ff]")),
    ("cjk", re.compile("[\u4e00-\u9fff]")),
    ("hangul", re.compile("[\uac00-\ud7af]")),
)
_LENGTHS = ((20, "tiny"), (60, "short"), (150, "medium"), (400, "long"), (1000, "longer"))


def truncate(text: str) -> str:
    """Keep the head and tail of a long prompt: the cost stays bounded, and the
    instruction is nearly always at the start or the end of what was pasted."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


def stable_hash(data: bytes) -> int:
    """crc32: identical in every process and on every machine, unlike ``hash()``."""
    return zlib.crc32(data)


@functools.lru_cache(maxsize=4096)
def bucket(name: str) -> int:
    """The bucket of a named feature such as ``m:fence`` or ``l:short``
    (cached: whole-prompt features come from a small, fixed set of names)."""
    return stable_hash(name.encode()) & _MASK


def words(text: str) -> list[bytes]:
    """Lower-cased words: punctuation becomes a separator, ``_`` and UTF-8 stay."""
    return text.lower().encode().translate(_WORD_TABLE).split()


def word_hash(word: bytes) -> int:
    """The 32-bit hash of a word's unigram feature; pairs are derived from it."""
    return stable_hash(b"w:" + word)


def pair_parts(word: bytes) -> tuple[int, int]:
    """(left, right): the bucket of the pair "a b" is ``left(a) ^ right(b)``."""
    h = word_hash(word)
    return ((_PAIR_SALT ^ h) * _FNV_PRIME) & _MASK, h & _MASK


def gram_count(word: bytes) -> int:
    """How many 3-grams ``char_grams`` gives: one per byte, at most ``MAX_GRAMS``
    (a 2,000-byte "word" is a pasted blob or an unspaced CJK run; its first
    bytes say as much as all of them, and a new word's cost stays bounded)."""
    return min(len(word), MAX_GRAMS)


def char_grams(word: bytes) -> list[bytes]:
    """3-grams of the word with ``<`` ``>`` marking its edges. (Adding 4-grams
    cost twice the hashing and scored no better on the training-set
    cross-validation.)"""
    padded = b"<" + word + b">"
    return list(map(padded.__getitem__, _SLICES3[: gram_count(word)]))


def iter_word_buckets(word: bytes) -> Iterator[int]:
    """Buckets of a word, lazily: its unigram, then its ``gram_count`` 3-grams.
    A chain of ``map`` over C functions, as this runs for every new word;
    ``crc32(gram, _GRAM_SEED)`` equals ``crc32(b"c:" + gram)``, minus the copy."""
    grams = map(zlib.crc32, char_grams(word), repeat(_GRAM_SEED))
    return map(_MASK.__and__, chain((word_hash(word),), grams))


@functools.lru_cache(maxsize=1 << 15)
def word_buckets(word: bytes) -> tuple[int, ...]:
    """``iter_word_buckets`` as a tuple, cached (training sees words again and again)."""
    return tuple(iter_word_buckets(word))


def pair_spans(count: int) -> list[slice]:
    """The runs of words whose adjacent pairs are features: all of a short
    prompt, the first ``PAIR_HEAD`` and last ``PAIR_TAIL`` words of a long one.
    Pairs inside a pasted page say little about the request and cost time."""
    if count <= PAIR_HEAD + PAIR_TAIL:
        return [slice(0, count)]
    return [slice(0, PAIR_HEAD), slice(count - PAIR_TAIL, count)]


def pair_buckets(lefts: Sequence[int], rights: Sequence[int]) -> list[int]:
    """Buckets of adjacent word pairs from the words' ``pair_parts``."""
    return list(map(xor, lefts, rights[1:]))


def edge_buckets(head: Sequence[int], tail: Sequence[int]) -> list[int]:
    """Buckets for the first and last few words (``right`` parts of the first
    and last pair spans): that is where the request usually is."""
    first = list(map(xor, repeat(_HEAD), head[:EDGE_WORDS]))
    return first + list(map(xor, repeat(_TAIL), tail[-EDGE_WORDS:]))


def _share(part: int, whole: int) -> str:
    share = part / whole if whole else 0.0
    if share == 0:
        return "none"
    return "low" if share < 0.05 else "mid" if share < 0.2 else "high"


def context_names(text: str) -> list[str]:
    """Names of the whole-prompt features: markers, length, digits, script."""
    raw = text.encode()
    seen = set(raw.translate(None, _NOT_SEEN))
    names = [_CHAR_NAMES[b] for b in sorted(seen) if b in _CHAR_NAMES]
    names.extend(name for needle, name, gate in _GATED if gate in seen and needle in text)
    size = next((label for limit, label in _LENGTHS if len(text) <= limit), "huge")
    lines = text.count("\n")
    names.append(f"l:{size}")
    names.append(f"n:{min(lines, 3) if lines < 10 else 'many'}")
    digits = len(raw) - len(raw.translate(None, _DIGITS))
    maths = len(raw) - len(raw.translate(None, _MATH))
    names.append(f"d:{_share(digits, len(raw))}")
    names.append(f"o:{_share(maths, len(raw))}")
    names.append(f"u:{_share(len(raw) - len(text), len(raw))}")
    if not text.isascii():
        names.extend(name for needle, name in _UNICODE_NAMES if needle in text)
        names.extend(f"s:{name}" for name, pattern in _SCRIPTS if pattern.search(text))
    return names


def extract(text: str) -> list[int]:
    """All feature buckets of a prompt, repeated as often as they occur."""
    text = truncate(text)
    tokens = words(text)
    out = [b for w in tokens for b in word_buckets(w)]
    spans = [_parts(tokens[span]) for span in pair_spans(len(tokens))]
    for lefts, rights in spans:
        out.extend(pair_buckets(lefts, rights))
    out.extend(edge_buckets(spans[0][1], spans[-1][1]))
    out.extend(bucket(name) for name in context_names(text))
    return out


def _parts(tokens: list[bytes]) -> tuple[list[int], list[int]]:
    parts = [pair_parts(w) for w in tokens]
    return [left for left, _ in parts], [right for _, right in parts]


def named_features(text: str) -> list[tuple[str, int]]:
    """Readable names with their buckets, in ``extract`` order; for explanations
    only (slower), but built from the same functions so the buckets agree. A
    word's n-grams carry the word's name: "word 'translate'" reads better than
    a list of its fragments."""
    text = truncate(text)
    tokens = words(text)
    shown = [w.decode(errors="replace") for w in tokens]
    out: list[tuple[str, int]] = []
    for word, label in zip(tokens, shown, strict=True):
        out.extend((f"word '{label}'", b) for b in word_buckets(word))
    spans = pair_spans(len(tokens))
    parts = [_parts(tokens[span]) for span in spans]
    for span, (lefts, rights) in zip(spans, parts, strict=True):
        pairs = (f"pair '{a} {b}'" for a, b in pairwise(shown[span]))
        out.extend(zip(pairs, pair_buckets(lefts, rights), strict=True))
    edges = [f"starts with '{w}'" for w in shown[spans[0]][:EDGE_WORDS]]
    edges += [f"ends with '{w}'" for w in shown[spans[-1]][-EDGE_WORDS:]]
    out.extend(zip(edges, edge_buckets(parts[0][1], parts[-1][1]), strict=True))
    out.extend((name, bucket(name)) for name in context_names(text))
    return out
