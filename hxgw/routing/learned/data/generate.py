"""Regenerate ``train.jsonl`` and ``heldout.jsonl`` from the hand-written sources.

Run ``python -m hxgw.routing.learned.data.generate``; the output is identical every time
(fixed seed, sorted iteration), so the committed JSONL can be checked by diff.

Sources, all in this folder, in one plain-text format (``@@ KIND NAME`` opens a
section, ``%%`` alone on a line separates items; a section without ``%%``
holds one item per line):
- ``train_prompts.txt``: hand-written training prompts (``@@ prompt LABEL``).
- ``train_templates.txt``: training templates (``@@ template LABEL``) with
  ``<<pool>>`` slots filled from ``@@ pool NAME`` sections (pools may nest), and
  ``<<#kind>>`` slots filled with generated numbers and formulas.
- ``heldout_prompts.txt``: the held-out set, hand-written separately, with no
  templates and no shared pools; it is never read for training.

Why templates at all: they give volume and variety of phrasing around the
hand-written core, while noise (case, typos, politeness, trailing words) keeps
the model from keying on punctuation habits. Why the overlap check: a held-out
prompt that is a near-copy of a training prompt would flatter the model.
"""

import json
import random
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20240601
TRAIN_PER_LABEL = 300
MAX_OVERLAP = 0.4
_SLOT = re.compile(r"<<(#?[a-z_]+)>>")

Sections = dict[tuple[str, str], list[str]]


def read_sections(path: Path) -> Sections:
    """``{(kind, name): [item, ...]}`` from one source file."""
    sections: Sections = defaultdict(list)
    key: tuple[str, str] | None = None
    lines: list[str] = []

    def flush() -> None:
        item = "\n".join(lines).strip("\n")
        if key is not None and item.strip():
            sections[key].append(item)
        lines.clear()

    separated: set[tuple[str, str]] = set()
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("@@ "):
            flush()
            kind, name = raw[3:].split()
            key = (kind, name)
        elif raw == "%%" and key is not None:
            flush()
            separated.add(key)
        else:
            lines.append(raw)
    flush()
    for plain in sections.keys() - separated:
        sections[plain] = [line for item in sections[plain] for line in item.splitlines() if line]
    return dict(sections)


def _poly(rng: random.Random) -> str:
    a, b, c = rng.randint(1, 9), rng.randint(-9, 9), rng.randint(-20, 20)
    power = rng.choice(["x^2", "x^3", "x²", "x^4"])
    return f"{a}{power} {'+' if b >= 0 else '-'} {abs(b)}x {'+' if c >= 0 else '-'} {abs(c)}"


def _equation(rng: random.Random) -> str:
    a, x, b = rng.randint(2, 12), rng.randint(-10, 15), rng.randint(-30, 30)
    var = rng.choice("xyn")
    return f"{a}{var} {'+' if b >= 0 else '-'} {abs(b)} = {a * x + b}"


def _numbers(rng: random.Random) -> str:
    return ", ".join(str(rng.randint(1, 99)) for _ in range(rng.randint(5, 9)))


GENERATED: dict[str, Callable[[random.Random], str]] = {
    "#int": lambda rng: str(rng.randint(2, 999)),
    "#big": lambda rng: str(rng.randint(1000, 99999)),
    "#small": lambda rng: str(rng.randint(2, 12)),
    "#frac": lambda rng: f"{rng.randint(1, 9)}/{rng.randint(2, 12)}",
    "#pct": lambda rng: f"{rng.randint(2, 95)}%",
    "#money": lambda rng: f"${rng.randint(2, 900) * 10:,}",
    "#poly": _poly,
    "#eq": _equation,
    "#list": _numbers,
}


def fill(template: str, pools: dict[str, list[str]], rng: random.Random, depth: int = 0) -> str:
    """Replace every slot, recursively (pool items may hold slots too)."""
    if depth > 5:
        raise ValueError(f"slots nest too deep in {template[:60]!r}")

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in GENERATED:
            return GENERATED[name](rng)
        if name not in pools:
            raise KeyError(f"no pool named {name!r} (in {template[:60]!r})")
        return fill(rng.choice(pools[name]), pools, rng, depth + 1)

    return _SLOT.sub(replace, template)


def _typo(text: str, rng: random.Random) -> str:
    """Swap two adjacent letters in one longer word, as hurried typing does."""
    spots = [m.start() for m in re.finditer(r"[a-z]{5,}", text)]
    if not spots:
        return text
    at = rng.choice(spots) + rng.randint(1, 3)
    return text[:at] + text[at + 1] + text[at] + text[at + 2 :]


def add_noise(text: str, pools: dict[str, list[str]], rng: random.Random) -> str:
    """Vary the surface: politeness, case, final punctuation, typos."""
    if rng.random() < 0.25:
        text = fill(rng.choice(pools["opener"]), pools, rng) + " " + text
    if rng.random() < 0.2:
        text = text + " " + fill(rng.choice(pools["closer"]), pools, rng)
    if "\n" not in text and rng.random() < 0.3:
        text = text.lower()
    elif rng.random() < 0.3:
        text = text[:1].upper() + text[1:]
    if rng.random() < 0.2:
        text = text.rstrip("?.!")
    if rng.random() < 0.25:
        text = _typo(text, rng)
    return text


def build_train(rng: random.Random) -> list[dict[str, str]]:
    """Hand-written prompts plus templated ones, ``TRAIN_PER_LABEL`` a label."""
    written = read_sections(HERE / "train_prompts.txt")
    templated = read_sections(HERE / "train_templates.txt")
    pools = {name: items for (kind, name), items in templated.items() if kind == "pool"}
    rows: list[dict[str, str]] = []
    labels = sorted({name for kind, name in written if kind == "prompt"})
    for label in labels:
        seen = set(written[("prompt", label)])
        rows.extend({"text": t, "label": label} for t in written[("prompt", label)])
        templates = templated[("template", label)]
        tries = 0
        while len(seen) < TRAIN_PER_LABEL and tries < 50 * TRAIN_PER_LABEL:
            tries += 1
            text = add_noise(fill(rng.choice(templates), pools, rng), pools, rng).strip()
            if text not in seen:
                seen.add(text)
                rows.append({"text": text, "label": label})
    rng.shuffle(rows)
    return rows


def build_heldout(rng: random.Random) -> list[dict[str, str]]:
    """The held-out prompts exactly as written, shuffled."""
    written = read_sections(HERE / "heldout_prompts.txt")
    rows = [
        {"text": t, "label": name} for (_, name), items in sorted(written.items()) for t in items
    ]
    rng.shuffle(rows)
    return rows


def _shingles(text: str) -> set[tuple[str, ...]]:
    tokens = re.findall(r"\w+", text.lower())
    return {tuple(tokens[i : i + 3]) for i in range(max(len(tokens) - 2, 1))}


def worst_overlap(train: list[dict[str, str]], heldout: list[dict[str, str]]) -> tuple[float, str]:
    """The highest word-trigram Jaccard similarity of a held-out prompt to any
    training prompt, with that held-out prompt."""
    train_sets = [_shingles(row["text"]) for row in train]
    worst, which = 0.0, ""
    for row in heldout:
        mine = _shingles(row["text"])
        for other in train_sets:
            union = len(mine | other)
            score = len(mine & other) / union if union else 0.0
            if score > worst:
                worst, which = score, row["text"]
    return worst, which


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    """One compact object per line, UTF-8 kept readable."""
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> int:
    """Build both sets, refuse near-duplicates across them, write, report."""
    train = build_train(random.Random(SEED))
    heldout = build_heldout(random.Random(SEED + 1))
    worst, which = worst_overlap(train, heldout)
    if worst > MAX_OVERLAP:
        print(f"held-out prompt too close to training ({worst:.2f}): {which!r}", file=sys.stderr)
        return 1
    write_jsonl(HERE / "train.jsonl", train)
    write_jsonl(HERE / "heldout.jsonl", heldout)
    for name, rows in (("train", train), ("heldout", heldout)):
        counts = Counter(row["label"] for row in rows)
        print(name, len(rows), dict(sorted(counts.items())))
    print(f"worst held-out/train trigram overlap: {worst:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
