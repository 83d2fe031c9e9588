"""Turn a prompt into hashed feature buckets, cheaply and reproducibly.

Why hashing: the model file then stores bucket numbers instead of a vocabulary,
so it stays small and any text can be scored without an out-of-vocabulary step.
Why crc32: Python's ``hash()`` is salted per process, so a model trained in one
process would be garbage in the next; crc32 is stable everywhere and runs in C.
Why bytes: ``bytes.translate`` + ``split`` tokenise in C, several times faster
than a regex, and crc32 wants bytes anyway. Non-ASCII text stays UTF-8, so the
"character" n-grams are byte n-grams: the same thing for ASCII, and for other
scripts they still tell one script (and often one language) from another.
Why a word cache: n-grams inside a word cost ~2 µs to hash, which is the whole
latency budget for a long prompt; words repeat, so each is hashed once.
"""

import functools
import re
import string
import zlib
from itertools import repeat

N_BUCKETS = 1 << 18
HEAD_CHARS = 2000
TAIL_CHARS = 500
EDGE_WORDS = 8

_MASK = N_BUCKETS - 1
_U32 = 0xFFFFFFFF
_FNV_PRIME = 16777619
_BIGRAM_SALT = 0x9E3779B1
_HEAD_SALT = 0x85EBCA6B
_TAIL_SALT = 0xC2B2AE35
_GRAM_SEED = zlib.crc32(b"c:")
_SLICES3 = [slice(i, i + 3) for i in range(HEAD_CHARS + TAIL_CHARS)]
_SLICES4 = [slice(i, i + 4) for i in range(HEAD_CHARS + TAIL_CHARS)]

_TABLE = bytearray(range(256))
for _c in string.punctuation:
    if _c != "_":
        _TABLE[ord(_c)] = ord(" ")
for _c in string.ascii_uppercase:
    _TABLE[ord(_c)] = ord(_c.lower())
_WORD_TABLE = bytes(_TABLE)
_DIGITS = b"0123456789"
_MATH = b"+-*/=^%<>()"

# Substrings whose presence says "code", "maths" or "pasted text" better than words do.
MARKERS: tuple[tuple[str, str], ...] = (
    ("fence", "```"),
    ("def", "def "),
    ("brace", "{"),
    ("semicolon", ";"),
    ("arrow", "=>"),
    ("thin-arrow", "->"),
    ("call", "()"),
    ("eqeq", "=="),
    ("neq", "!="),
    ("and-and", "&&"),
    ("or-or", "||"),
    ("import", "import "),
    ("include", "#include"),
    ("tag", "</"),
    ("self", "self."),
    ("dollar", "$"),
    ("indent", "\n    "),
    ("tab", "\t"),
    ("comment", "//"),
    ("backtick", "`"),
    ("traceback", "Traceback"),
    ("caret", "^"),
    ("equals", "="),
    ("plus", "+"),
    ("slash", "/"),
    ("star", "*"),
    ("math-sign", "√"),
    ("integral", "∫"),
    ("sum-sign", "∑"),
    ("pi", "π"),
    ("squared", "²"),
    ("question", "?"),
    ("quote", '"'),
    ("smart-quote", "“"),
    ("colon-newline", ":\n"),
    ("paragraph", "\n\n"),
    ("bullet", "\n- "),
)

_MARKER_NAMES = tuple((f"m:{name}", needle) for name, needle in MARKERS)

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
    """The 32-bit hash of a word's unigram feature; bigrams are derived from it."""
    return stable_hash(b"w:" + word)


def pair_bucket(left: int, right: int) -> int:
    """Combine two 32-bit hashes (FNV-style) without re-hashing any bytes."""
    return (((left * _FNV_PRIME) & _U32) ^ right) & _MASK


def char_grams(word: bytes) -> list[bytes]:
    """3- and 4-grams of the word with ``<`` ``>`` marking its edges (slicing
    through ``map`` keeps the loop in C)."""
    padded = b"<" + word + b">"
    cut = padded.__getitem__
    return [*map(cut, _SLICES3[: len(padded) - 2]), *map(cut, _SLICES4[: len(padded) - 3])]


@functools.lru_cache(maxsize=1 << 15)
def word_buckets(word: bytes) -> tuple[int, ...]:
    """Buckets of a word: its unigram first, then its character n-grams.
    ``crc32(gram, _GRAM_SEED)`` equals ``crc32(b"c:" + gram)``, minus the copy."""
    grams = map(zlib.crc32, char_grams(word), repeat(_GRAM_SEED))
    return (word_hash(word) & _MASK, *(h & _MASK for h in grams))


def _share_bucket(part: int, whole: int) -> str:
    share = part / whole if whole else 0.0
    if share == 0:
        return "none"
    return "low" if share < 0.05 else "mid" if share < 0.2 else "high"


def context_names(text: str) -> list[str]:
    """Names of the whole-prompt features: markers, length, digits, script."""
    names = [name for name, needle in _MARKER_NAMES if needle in text]
    size = next((label for limit, label in _LENGTHS if len(text) <= limit), "huge")
    lines = text.count("\n")
    names.append(f"l:{size}")
    names.append(f"n:{min(lines, 3) if lines < 10 else 'many'}")
    raw = text.encode()
    digits = len(raw) - len(raw.translate(None, _DIGITS))
    maths = len(raw) - len(raw.translate(None, _MATH))
    names.append(f"d:{_share_bucket(digits, len(raw))}")
    names.append(f"o:{_share_bucket(maths, len(raw))}")
    names.append(f"u:{_share_bucket(len(raw) - len(text), len(raw))}")
    if not text.isascii():
        names.extend(f"s:{name}" for name, pattern in _SCRIPTS if pattern.search(text))
    return names


def edge_buckets(hashes: list[int]) -> list[int]:
    """Buckets for the first and last few words: that is where the request is."""
    head = [pair_bucket(_HEAD_SALT, h) for h in hashes[:EDGE_WORDS]]
    tail = [pair_bucket(_TAIL_SALT, h) for h in hashes[-EDGE_WORDS:]]
    return head + tail


def bigram_buckets(hashes: list[int]) -> list[int]:
    """Buckets of adjacent word pairs, from the words' cached hashes; this is
    ``pair_bucket(_BIGRAM_SALT ^ a, b)`` written out, as it runs per word."""
    return [
        ((((_BIGRAM_SALT ^ a) * _FNV_PRIME) & _U32) ^ b) & _MASK
        for a, b in zip(hashes, hashes[1:], strict=False)
    ]


def extract(text: str) -> list[int]:
    """All feature buckets of a prompt, repeated as often as they occur."""
    text = truncate(text)
    tokens = words(text)
    hashes = [word_hash(w) for w in tokens]
    out = [b for w in tokens for b in word_buckets(w)]
    out.extend(bigram_buckets(hashes))
    out.extend(edge_buckets(hashes))
    out.extend(bucket(name) for name in context_names(text))
    return out


def named_features(text: str) -> list[tuple[str, int]]:
    """Readable names with their buckets, in ``extract`` order; for explanations
    only (slower), but built from the same functions so the buckets agree. A
    word's n-grams carry the word's name: "word 'translate'" reads better than
    a list of its fragments."""
    text = truncate(text)
    tokens = words(text)
    shown = [w.decode(errors="replace") for w in tokens]
    hashes = [word_hash(w) for w in tokens]
    out: list[tuple[str, int]] = []
    for word, label in zip(tokens, shown, strict=True):
        out.extend((f"word '{label}'", b) for b in word_buckets(word))
    pairs = zip(shown, shown[1:], strict=False)
    out.extend(zip((f"pair '{a} {b}'" for a, b in pairs), bigram_buckets(hashes), strict=True))
    edges = [f"starts with '{w}'" for w in shown[:EDGE_WORDS]]
    edges += [f"ends with '{w}'" for w in shown[-EDGE_WORDS:]]
    out.extend(zip(edges, edge_buckets(hashes), strict=True))
    out.extend((name, bucket(name)) for name in context_names(text))
    return out
