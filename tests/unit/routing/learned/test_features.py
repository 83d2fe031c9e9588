"""Feature extraction: stable buckets, bounded cost, explanations that agree."""

import os
import subprocess
import sys
import zlib

from hxgw.routing.learned import features
from tests.fixtures import REPO


def test_bucket_of_a_fixed_name_is_a_fixed_number() -> None:
    assert features.bucket("w:python") == 173287
    assert features.bucket("w:python") == zlib.crc32(b"w:python") % features.N_BUCKETS


def test_extract_is_identical_in_processes_with_different_hash_seeds() -> None:
    code = (
        "from hxgw.routing.learned import features; print(features.extract('Fix my Rust code ```fn``` pls'))"
    )
    outputs = set()
    for seed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1


def test_word_hash_shortcut_equals_hashing_the_prefixed_word() -> None:
    assert features.unit_buckets([b"translate"]) == [features.bucket("w:translate")]


def test_a_word_longer_than_the_prefix_adds_its_prefix_bucket() -> None:
    expected = zlib.crc32(b"p:tran") % features.N_BUCKETS
    assert features.prefix_buckets([b"translate", b"into", b"french"]) == [
        expected,
        zlib.crc32(b"p:fren") % features.N_BUCKETS,
    ]


def test_a_pair_bucket_depends_on_the_order_of_its_words() -> None:
    ab = features.extract("alpha beta")
    ba = features.extract("beta alpha")
    assert sorted(ab) != sorted(ba)


def test_words_are_lowercased_and_split_on_punctuation() -> None:
    assert features.words("Hello, World! snake_case über") == [
        b"hello",
        b"world",
        b"snake_case",
        "über".encode(),
    ]


def test_truncate_keeps_head_and_tail_of_long_text() -> None:
    text = "a" * 10_000 + "THE END"
    cut = features.truncate(text)
    assert len(cut) <= features.HEAD_CHARS + features.TAIL_CHARS + 1
    assert cut.endswith("THE END")


def test_named_features_have_the_same_buckets_as_extract() -> None:
    text = "Traduce al inglés: ¿Dónde está la estación?\n```py\nx = 1\n```"
    named = features.named_features(text)
    assert [b for _, b in named] == features.extract(text)


def test_at_most_a_few_thousand_features_whatever_the_prompt() -> None:
    worst = ["a " * 5000, "中文 " * 3000, "éèê " * 3000, "x" * 9000, "a\n" * 5000]
    assert max(len(features.extract(text)) for text in worst) < 3000


def test_pairs_and_edges_of_a_long_prompt_come_from_its_ends_only() -> None:
    head = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    tail = ["iota", "kappa", "lambda", "mu"]
    short = [w.encode() for w in head + tail]
    padded = [w.encode() for w in head + ["filler"] * 30 + tail]
    assert features.phrase_buckets(*features.end_units(padded)) == features.phrase_buckets(
        *features.end_units(short)
    )
