"""Search patterns (run filter, series search, runs filter): the Python and JavaScript matchers
agree on one list of cases, agree with ``re`` where the syntax is shared, and take linear time
on the patterns that make a backtracking engine take exponential time."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kohakuboard.viewer.pattern import MAX_PATTERN, compile_pattern, matcher

HERE = Path(__file__).resolve().parent
CASES = json.loads((HERE / "pattern_cases.json").read_text(encoding="utf-8"))["cases"]
PATTERN_JS = HERE.parents[1] / "viewer_ui" / "src" / "pattern.js"
# Patterns that take exponential (or high polynomial) time in a backtracking engine.
CATASTROPHIC = ["(a+)+$", "(a|a)*$", "(a|aa)+$", "(a*)*b", "(x+x+)+y", "^(\\w+\\s?)*$", "(.*a){20}"]


@pytest.mark.parametrize(("pattern", "text", "expected", "valid"), CASES)
def test_python_matcher_cases(pattern: str, text: str, expected: bool, valid: bool) -> None:
    found = matcher(pattern)
    assert found.valid is valid, found.reason
    assert found.test(text) is expected


def _javascript_answers(pairs: list[list[str]], tmp_path: Path) -> list[list[bool]]:
    """``[matches, valid]`` of viewer_ui/src/pattern.js for each ``[pattern, text]``."""
    given = tmp_path / "pairs.json"
    given.write_text(json.dumps(pairs), encoding="utf-8")
    script = f"""
    import {{ matcher }} from {json.dumps(PATTERN_JS.as_uri())}
    import {{ readFileSync }} from 'node:fs'
    const pairs = JSON.parse(readFileSync(process.argv[1], 'utf8'))
    const out = pairs.map(([p, t]) => {{ const m = matcher(p); return [m.test(t), m.valid] }})
    console.log(JSON.stringify(out))
    """
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script, str(given)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    answers: list[list[bool]] = json.loads(done.stdout)
    return answers


NO_NODE = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")


@NO_NODE
def test_javascript_matcher_gives_the_same_answers(tmp_path: Path) -> None:
    answers = _javascript_answers([[p, t] for p, t, _, _ in CASES], tmp_path)
    wrong = [
        (case, got) for case, got in zip(CASES, answers, strict=True) if got != [case[2], case[3]]
    ]
    assert not wrong


@NO_NODE
def test_javascript_and_python_agree_on_random_patterns(tmp_path: Path) -> None:
    # any text (any case, non-ASCII, astral characters) and any pattern, valid or not
    rng = random.Random(12)
    alphabet = list("aAbB.*+?|()[]{}^$\\-,0129dwsDWSntx/_ \u00e9\u00c9\u03a3\u03c3\U0001f600")
    pairs = [
        [
            "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10))),
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14))),
        ]
        for _ in range(3000)
    ]
    python = [[matcher(p).test(t), matcher(p).valid] for p, t in pairs]
    assert sum(v for _, v in python) > 300  # enough valid patterns among them
    javascript = _javascript_answers(pairs, tmp_path)
    wrong = [
        (pair, py, js) for pair, py, js in zip(pairs, python, javascript, strict=True) if py != js
    ]
    assert not wrong[:5]


ATOMS = st.sampled_from(
    [
        "a",
        "b",
        "A",
        ".",
        "[ab]",
        "[^a]",
        "[a-c]",
        "\\d",
        "\\w",
        "\\s",
        "\\.",
        "(a|b)",
        "(?:ab)",
        "x",
    ]
)


@st.composite
def patterns(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 6))):
        atom = draw(ATOMS)
        quant = draw(st.sampled_from(["", "", "*", "+", "?", "{2}", "{1,3}", "{2,}", "*?"]))
        parts.append(atom + quant)
        if draw(st.integers(0, 5)) == 0:
            parts.append("|")
    anchor_start = draw(st.sampled_from(["", "^"]))
    anchor_end = draw(st.sampled_from(["", "$"]))
    return anchor_start + "".join(parts).strip("|") + anchor_end


@settings(max_examples=300, deadline=None)
@given(pattern=patterns(), text=st.text(alphabet="abcAB1 .x_", max_size=12))
def test_agrees_with_re_on_the_shared_syntax(pattern: str, text: str) -> None:
    expected = re.search(pattern, text, re.IGNORECASE) is not None
    found = matcher(pattern)
    assert found.valid, found.reason
    assert found.test(text) is expected, (pattern, text)


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_catastrophic_patterns_take_linear_time(pattern: str) -> None:
    # a backtracking engine takes about 2**n steps on these; 5,000 characters would not end
    found = matcher(pattern)
    assert found.valid
    started = time.perf_counter()
    for text in ("a" * 5000 + "!", "x" * 5000, "ab " * 1600 + "!"):
        found.test(text)
    assert time.perf_counter() - started < 20  # generous: about 30 ms here


def test_a_program_stays_small() -> None:
    # every instruction is visited at most once per character: the size caps the cost
    assert len(compile_pattern("(a{100}|b{100}){0,4}")) < 2000
    with pytest.raises(ValueError, match="over 2000 steps"):
        compile_pattern("((a{100}){10}){10}")
    with pytest.raises(ValueError, match=f"over {MAX_PATTERN} characters"):
        compile_pattern("a" * (MAX_PATTERN + 1))


def test_an_invalid_pattern_is_searched_as_text_and_says_why() -> None:
    found = matcher("(a)\\1")
    assert not found.valid and "'\\1' is not supported" in found.reason
    assert found.test("X(A)\\1") and not found.test("aa")
