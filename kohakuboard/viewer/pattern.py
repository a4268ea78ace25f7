"""Search patterns typed by a user (the viewer's run filter, series search, runs filter):
a regular-expression subset matched in time linear in the text, whatever the pattern.

A backtracking engine (Python's ``re``, JavaScript's ``RegExp``) can take exponential time on
a pattern such as ``(a+)+$``, and the viewer puts patterns in shared links. This module
compiles a pattern to a Thompson NFA and simulates it one character at a time: the cost is
at most (text length) x (program size), and the program size is capped. The browser runs the
same algorithm (``viewer_ui/src/pattern.js``); both are checked against one list of cases
(``tests/viewer/pattern_cases.json``).

Syntax (docs/viewer.md, "Search patterns"): literal characters; ``.`` (any character);
``[abc]``, ``[a-z]``, ``[^...]``; ``\\d \\w \\s`` and ``\\D \\W \\S`` (ASCII classes);
``\\t \\n \\r``; a backslash before any other non-alphanumeric character makes it literal;
``(...)``, ``(?:...)``; ``|``; the quantifiers ``* + ? {n} {n,} {n,m}`` (a trailing ``?``,
lazy in a regex, changes nothing for a yes/no search); ``^`` and ``$`` (start and end of the
text). Matching ignores case and finds the pattern anywhere in the text, like
``re.search(pattern, text, re.I)``. Anything else (back-references, look-around, ``\\b``, a
quantifier with nothing to repeat, an unbalanced parenthesis, more than
:data:`MAX_PATTERN` characters or a program over :data:`MAX_PROGRAM` steps) makes the
pattern *invalid*; an invalid pattern is searched as plain text, ignoring case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MAX_PATTERN = 256  # characters
MAX_REPEAT = 100  # the largest n or m in {n,m}
MAX_PROGRAM = 2000  # NFA instructions

_SPACE = frozenset(" \t\n\r\f\v")
_DIGIT = frozenset("0123456789")
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_CLASS_ESCAPES = {"d": _DIGIT, "w": _WORD, "s": _SPACE}
_CHAR_ESCAPES = {"t": "\t", "n": "\n", "r": "\r"}
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


class PatternError(ValueError):
    """The pattern is outside the supported subset (it is then searched as plain text)."""


def _variants(ch: str) -> tuple[str, ...]:
    """``ch`` and its single-character lower and upper case forms."""
    out = [ch]
    for other in (ch.lower(), ch.upper()):
        if len(other) == 1 and other not in out:
            out.append(other)
    return tuple(out)


@dataclass(frozen=True)
class CharSet:
    """Characters, ranges of code points and the ASCII classes (each ``(set, negated)``);
    matched ignoring case: a character is in the set if one of its case forms is."""

    chars: frozenset[str] = frozenset()
    ranges: tuple[tuple[int, int], ...] = ()
    classes: tuple[tuple[frozenset[str], bool], ...] = ()
    negated: bool = False

    def _has(self, ch: str) -> bool:
        if ch in self.chars:
            return True
        code = ord(ch)
        if any(lo <= code <= hi for lo, hi in self.ranges):
            return True
        return any((ch in members) != neg for members, neg in self.classes)

    def __call__(self, ch: str) -> bool:
        return self.matches(_variants(ch))

    def matches(self, variants: tuple[str, ...]) -> bool:
        """Whether one of a character's case forms (:func:`_variants`) is in the set."""
        return any(self._has(v) for v in variants) != self.negated


# AST nodes: ("char", pred) | ("bol",) | ("eol",) | ("cat", [nodes]) | ("alt", [nodes])
# | ("rep", node, lo, hi) with hi None for no upper bound.
Node = tuple


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.chars = list(pattern)
        self.pos = 0

    def peek(self, ahead: int = 0) -> str | None:
        i = self.pos + ahead
        return self.chars[i] if i < len(self.chars) else None

    def take(self) -> str:
        ch = self.chars[self.pos]
        self.pos += 1
        return ch

    def parse(self) -> Node:
        node = self.alternation()
        if self.pos != len(self.chars):  # a ")" with no "("
            raise PatternError(f"unmatched ')' at {self.pos}")
        return node

    def alternation(self) -> Node:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.take()
            branches.append(self.sequence())
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def sequence(self) -> Node:
        items: list[Node] = []
        while (ch := self.peek()) is not None and ch not in "|)":
            atom = self.atom()
            items.append(self.quantified(atom))
        return ("cat", items)

    def quantified(self, atom: Node) -> Node:
        bounds = self.quantifier()
        if bounds is None:
            return atom
        if atom[0] in ("bol", "eol"):
            raise PatternError("an anchor cannot be repeated")
        if self.peek() == "?":
            self.take()  # lazy: the same yes/no answer
        if (ch := self.peek()) is not None and ch in "*+?" or self._counted_ahead():
            raise PatternError(f"a quantifier follows a quantifier at {self.pos}")
        return ("rep", atom, *bounds)

    def _counted_ahead(self) -> bool:
        save = self.pos
        try:
            return self.peek() == "{" and self.counted() is not None
        finally:
            self.pos = save

    def quantifier(self) -> tuple[int, int | None] | None:
        ch = self.peek()
        if ch == "*":
            self.take()
            return 0, None
        if ch == "+":
            self.take()
            return 1, None
        if ch == "?":
            self.take()
            return 0, 1
        if ch == "{":
            return self.counted()
        return None

    def counted(self) -> tuple[int, int | None] | None:
        """``{n}``, ``{n,}`` or ``{n,m}`` (consumed); anything else is a literal ``{``."""
        start = self.pos
        self.take()
        lo = self.number()
        if lo is None:
            self.pos = start
            return None
        hi: int | None = lo
        if self.peek() == ",":
            self.take()
            hi = self.number()
        if self.peek() != "}":
            self.pos = start
            return None
        self.take()
        if hi is not None and hi < lo:
            raise PatternError(f"{{{lo},{hi}}}: the numbers are out of order")
        if lo > MAX_REPEAT or (hi is not None and hi > MAX_REPEAT):
            raise PatternError(f"a count over {MAX_REPEAT}")
        return lo, hi

    def number(self) -> int | None:
        digits = ""
        while (ch := self.peek()) is not None and ch in _DIGIT:
            digits += self.take()
        return int(digits) if digits else None

    def atom(self) -> Node:
        ch = self.take()
        if ch in "*+?":
            raise PatternError(f"{ch!r} has nothing to repeat")
        if ch == "{" and self._counted_at(self.pos - 1):
            raise PatternError("'{' has nothing to repeat")
        if ch == "(":
            if self.peek() == "?":
                if self.peek(1) != ":":
                    raise PatternError("only (?:...) groups are supported")
                self.pos += 2
            inner = self.alternation()
            if self.peek() != ")":
                raise PatternError("unclosed '('")
            self.take()
            return inner
        if ch == "[":
            return ("char", self.char_class())
        if ch == "\\":
            found = self.escape()
            return ("char", found if isinstance(found, CharSet) else _literal(found))
        if ch == "^":
            return ("bol",)
        if ch == "$":
            return ("eol",)
        if ch == ".":
            return ("char", CharSet(negated=True))
        return ("char", _literal(ch))

    def _counted_at(self, index: int) -> bool:
        save = self.pos
        self.pos = index
        try:
            return self.counted() is not None
        finally:
            self.pos = save

    def escape(self) -> str | CharSet:
        """After a backslash: one literal character, or a class such as ``\\d``."""
        ch = self.peek()
        if ch is None:
            raise PatternError("the pattern ends with '\\'")
        self.take()
        if ch in _ASCII_ALNUM and ch.lower() in _CLASS_ESCAPES:
            return CharSet(classes=((_CLASS_ESCAPES[ch.lower()], ch.isupper()),))
        if ch in _CHAR_ESCAPES:
            return _CHAR_ESCAPES[ch]
        if ch in _ASCII_ALNUM:
            raise PatternError(f"'\\{ch}' is not supported")
        return ch

    def char_class(self) -> CharSet:
        """After ``[``: up to the closing ``]`` (``[]`` matches nothing, ``[^]`` anything)."""
        negated = self.peek() == "^"
        if negated:
            self.take()
        chars: set[str] = set()
        ranges: list[tuple[int, int]] = []
        classes: list[tuple[frozenset[str], bool]] = []
        while True:
            ch = self.peek()
            if ch is None:
                raise PatternError("unclosed '['")
            if ch == "]":
                self.take()
                return CharSet(frozenset(chars), tuple(ranges), tuple(classes), negated)
            low = self.class_atom()
            if isinstance(low, CharSet):
                classes.extend(low.classes)
            elif self.peek() == "-" and self.peek(1) not in (None, "]"):
                self.take()
                high = self.class_atom()
                if isinstance(high, CharSet):
                    raise PatternError("a range ends in a class such as \\d")
                if ord(high) < ord(low):
                    raise PatternError(f"the range {low}-{high} is out of order")
                ranges.append((ord(low), ord(high)))
            else:
                chars.add(low)

    def class_atom(self) -> str | CharSet:
        ch = self.take()
        return self.escape() if ch == "\\" else ch


def _literal(ch: str) -> CharSet:
    return CharSet(frozenset([ch]))


# Program: a list of instructions
# ("char", pred) | ("split", a, b) | ("jmp", a) | ("bol",) | ("eol",) | ("match",)
Program = list[list]


class _Compiler:
    def __init__(self) -> None:
        self.prog: Program = []

    def emit(self, *instr: object) -> int:
        if len(self.prog) >= MAX_PROGRAM:
            raise PatternError(f"the pattern needs over {MAX_PROGRAM} steps")
        self.prog.append(list(instr))
        return len(self.prog) - 1

    def node(self, node: Node) -> None:
        kind = node[0]
        if kind == "char":
            self.emit("char", node[1])
        elif kind in ("bol", "eol"):
            self.emit(kind)
        elif kind == "cat":
            for item in node[1]:
                self.node(item)
        elif kind == "alt":
            jumps = []
            branches = node[1]
            for branch in branches[:-1]:
                split = self.emit("split", 0, 0)
                self.prog[split][1] = len(self.prog)
                self.node(branch)
                jumps.append(self.emit("jmp", 0))
                self.prog[split][2] = len(self.prog)
            self.node(branches[-1])
            for j in jumps:
                self.prog[j][1] = len(self.prog)
        else:
            self.repeat(node[1], node[2], node[3])

    def repeat(self, inner: Node, lo: int, hi: int | None) -> None:
        for _ in range(lo):
            self.node(inner)
        if hi is None:  # inner*: L: split body, out; body; jmp L
            split = self.emit("split", 0, 0)
            self.prog[split][1] = len(self.prog)
            self.node(inner)
            self.emit("jmp", split)
            self.prog[split][2] = len(self.prog)
            return
        exits = []
        for _ in range(hi - lo):  # nested optionals: (inner (inner ...)?)?
            split = self.emit("split", 0, 0)
            self.prog[split][1] = len(self.prog)
            exits.append(split)
            self.node(inner)
        for split in exits:
            self.prog[split][2] = len(self.prog)


def compile_pattern(pattern: str) -> Program:
    """The NFA program of ``pattern``; :class:`PatternError` if it is outside the subset."""
    if len(pattern) > MAX_PATTERN:
        raise PatternError(f"the pattern is over {MAX_PATTERN} characters")
    tree = _Parser(pattern).parse()
    compiler = _Compiler()
    compiler.node(tree)
    compiler.emit("match")
    return compiler.prog


MAX_CACHED_STEPS = 4096  # remembered transitions per matcher (then forgotten and rebuilt)
_MATCHED = (-1,)  # the state set of a step that reached the match state


def _closure(prog: Program, starts: list[int], at_start: bool, at_end: bool) -> tuple[int, ...]:
    """The character-consuming states reached from ``starts`` by following jumps (``^`` holds
    when ``at_start``, ``$`` when ``at_end``); :data:`_MATCHED` if the match state is."""
    out: list[int] = []
    seen: set[int] = set()
    stack = starts[::-1]
    while stack:
        at = stack.pop()
        if at in seen:
            continue
        seen.add(at)
        instr = prog[at]
        op = instr[0]
        if op == "match":
            return _MATCHED
        if op == "jmp":
            stack.append(instr[1])
        elif op == "split":
            stack.append(instr[2])
            stack.append(instr[1])
        elif op == "bol":
            if at_start:
                stack.append(at + 1)
        elif op == "eol":
            if at_end:
                stack.append(at + 1)
        else:
            out.append(at)
    return tuple(out)


class _Searcher:
    """Simulates the NFA on a text: the set of live states advances one character at a time
    (at most one visit per state and character). Each transition (states, character) is
    remembered, so a text over a small alphabet mostly costs one lookup per character."""

    def __init__(self, prog: Program) -> None:
        self.prog = prog
        self.steps: dict[tuple[tuple[int, ...], str, bool], tuple[int, ...]] = {}

    def step(self, current: tuple[int, ...], ch: str, at_end: bool) -> tuple[int, ...]:
        key = (current, ch, at_end)
        found = self.steps.get(key)
        if found is None:
            forms = _variants(ch)
            moved = [pc + 1 for pc in current if self.prog[pc][1].matches(forms)]
            found = _closure(self.prog, [*moved, 0], False, at_end)  # 0: a match may start here
            if len(self.steps) >= MAX_CACHED_STEPS:
                self.steps.clear()
            self.steps[key] = found
        return found

    def __call__(self, text: str) -> bool:
        n = len(text)
        current = _closure(self.prog, [0], True, n == 0)
        for i, ch in enumerate(text):
            if current is _MATCHED:
                return True
            current = self.step(current, ch, i + 1 == n)
        return current is _MATCHED


@dataclass(frozen=True)
class Matcher:
    """``test(text)``: whether the pattern occurs in ``text``. ``valid`` is False when the
    pattern was outside the subset and is searched as plain text; ``reason`` says why."""

    pattern: str
    valid: bool
    reason: str
    test: Callable[[str], bool]


def matcher(pattern: str) -> Matcher:
    """A matcher for a user-typed search pattern (module docstring: the syntax)."""
    if not pattern:
        return Matcher(pattern, True, "", lambda _text: True)
    try:
        prog = compile_pattern(pattern)
    except PatternError as exc:
        needle = pattern.lower()
        return Matcher(pattern, False, str(exc), lambda text: needle in text.lower())
    return Matcher(pattern, True, "", _Searcher(prog))
