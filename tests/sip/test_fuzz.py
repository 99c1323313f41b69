"""Mutation fuzzing of the parser with the RFC 4475 messages as seeds.

The parser may raise nothing but its own ParseError, whatever the bytes. The default run
tries a few thousand mutations; ``pytest -m nightly`` runs 100k (set SIPEDGE_FUZZ_CASES to
change it). Each case also exercises the lazily decoded parts and a serialise/re-parse.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipedge.sip import _scan
from sipedge.sip.errors import ParseError
from sipedge.sip.message import Request
from sipedge.sip.parser import parse_message

DATA = Path(__file__).parent.parent / "data" / "rfc4475"
SEEDS = [p.read_bytes() for p in sorted(DATA.glob("*.dat"))]
TOKENS = [
    b"\r\n",
    b" ",
    b";",
    b",",
    b":",
    b"<",
    b">",
    b'"',
    b"\\",
    b"%",
    b"@",
    b"=",
    b"\t",
    b"\r\n ",
    b"[",
    b"]",
    b"\x00",
    b"\xff",
    b"z9hG4bK",
    b"Via: ",
    b"l: 99999",
    b"tag=",
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(5)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip a byte
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:  # insert a syntax token
            buf[pos:pos] = rng.choice(TOKENS)
        elif op == 2 and buf:  # delete a run
            del buf[pos : pos + rng.randint(1, 8)]
        elif op == 3:  # duplicate a line
            lines = bytes(buf).split(b"\r\n")
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            buf = bytearray(b"\r\n".join(lines))
        else:  # truncate
            del buf[pos:]
    return bytes(buf)


def exercise(data: bytes) -> None:
    try:
        m = parse_message(data)
        if isinstance(m, Request):
            _ = m.uri
        _ = m.contacts
        _ = m.record_routes
        _ = m.expires
        for name, _value in m.iter_headers():
            m.header_list(name)
        m.set_max_forwards(5)
        parse_message(m.to_bytes())
    except ParseError:
        pass


def run(cases: int, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(cases):
        exercise(mutate(rng, rng.choice(SEEDS)))


def test_fuzz_default_run() -> None:
    run(int(os.environ.get("SIPEDGE_FUZZ_CASES_QUICK", "3000")), seed=4475)


@pytest.mark.nightly
def test_fuzz_nightly() -> None:
    run(int(os.environ.get("SIPEDGE_FUZZ_CASES", "100000")), seed=int(os.environ.get("SEED", "1")))


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet='<>a ;,"\\\t', max_size=12))
def test_split_commas_fast_path_agrees_with_the_scan(value: str) -> None:
    try:
        expected: list[str] | str = _scan._split_slow(value)
        if any(not p for p in expected):
            expected = "error"
    except ParseError:
        expected = "error"
    try:
        got: list[str] | str = _scan.split_commas(value)
    except ParseError:
        got = "error"
    assert got == expected
