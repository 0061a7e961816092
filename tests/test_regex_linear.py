"""Every regular expression that reads a customer's text runs in linear time on hostile text.

Python's ``re`` backtracks, and it holds the GIL for the whole of one match call: a pattern
whose work grows with the square of its input freezes the process (its event loop, or the
thread pool running it) for seconds on one chat message. So every pattern of the modules that
read customer text is checked here, found automatically (a new pattern is covered without
editing this file):

- the compiled ``re.Pattern`` objects among the modules' globals, also inside lists, tuples,
  dicts and the rule tables (``PLACE_CUES``, ``NAME_PATTERNS``, the date patterns…);
- the patterns written inline (``re.sub(r"\\s+", …)``): the modules' source is parsed and every
  ``re.<function>`` call whose pattern is a string literal is compiled;
- the patterns built at run time from data: the catalog's trie matchers (from the real
  catalog) and the speaker-name matcher (built from hostile names).

Two checks, neither of which measures a duration:

1. **Statically**, on the parse tree (``re._parser``): an unbounded quantifier that is not
   possessive (``*+``, ``++``) nor inside an atomic group (``(?>…)``) must not compete for the
   same text with another unbounded quantifier that can follow it with nothing in between
   that has to match (the next quantifier in the sequence, after optional parts; the next
   iteration of an enclosing one; itself, when its body can match nothing). Two such
   quantifiers can share a run of n characters in n ways, and a failing match tries all of
   them: ``(?:\\s+just)*(?:\\s+not)?(?:\\s+just)*\\s+love`` on "I just just … just x" is
   quadratic. "Compete" is judged by the characters each body can begin with, over a probe
   alphabet (ASCII, whitespace, typographic punctuation, accented and special-case letters):
   a conservative test, so a pattern it rejects is written with a possessive quantifier or
   an atomic group, never argued with.

2. **By the growth of work**, which also catches what the static check cannot see: a
   pattern that may start anywhere inside a long run ("\\s+but" on 20,000 spaces starts at
   each space and scans to the end of the run each time), or a branch that takes the same
   text two ways. Each pattern is run over hostile texts built from its own parse tree (for
   each unbounded quantifier: the text before it, then one iteration of its body, per
   alternative, repeated; and the prefix and iteration repeated together), and over long
   runs of separators, whitespace, punctuation, letters, digits and the pattern's own words.
   Each text is matched at two sizes eight times apart (1 KB and 8 KB, then the costliest
   texts again at 8 KB and 64 KB), and the CPU time of this thread (``time.thread_time``:
   not wall-clock time, so other processes on a loaded machine do not count) is compared:
   linear work grows eight times, quadratic work sixty-four. Each size is repeated until it
   is long enough to measure, the sizes are run alternately and the least of three rounds
   is kept, so a busy machine slows both sides alike; the test asserts that the work grows
   less than three times the size ratio.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import itertools
import math
import pkgutil
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from re import _constants as sre
from re import _parser as sre_parse
from typing import Any

import pytest

# the modules that read customer text (packages are walked whole)
MODULES = (
    "service.extraction",
    "service.retrieval",
    "service.text",
    "service.core.chat",
    "service.catalog",
    "service.core.summaries",
    "vectors.passages",
    "vectors.memories",
)
UNBOUNDED = sre.MAXREPEAT
REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)
ZERO_WIDTH = (sre.AT, sre.ASSERT, sre.ASSERT_NOT)
# the characters a body's first character is judged against
PROBES = tuple(
    dict.fromkeys(
        [chr(c) for c in range(32, 127)]
        + list("\t\n\r\x0b\x0c\x00\x85\xa0\u2028\u3000")
        + list("éàÿÀÉßİıſ\u212aµ’‘“”…–—€£😀\u200d\ufe0f")
    )
)
SIZE_RATIO = 4
LADDER = (64, 256, 1024, 4096)  # every hostile text climbs these sizes
LARGE = (4096, 16 * 1024, 64 * 1024)  # and the most suspicious ones these, up to a request's body
GROWTH_LIMIT = 2.0  # work may grow at most twice as fast as the text (quadratic work: four times)
# below this size a match attempt's bounded look-ahead (``{0,30}``, a word or two) can still be
# growing with the text: there only work that grows like a cube fails, early, before it hangs
STEADY = 1024
EARLY_LIMIT = 8.0
MIN_MEASURE_S = 0.0001  # a measurement is repeated until it takes at least this much CPU


# -- finding the patterns -----------------------------------------------------------------------


def _modules() -> list[Any]:
    found = []
    for name in MODULES:
        module = importlib.import_module(name)
        found.append(module)
        if hasattr(module, "__path__"):
            for info in pkgutil.walk_packages(module.__path__, name + "."):
                found.append(importlib.import_module(info.name))
    return found


def _patterns_in(value: Any, depth: int = 0) -> Iterator[re.Pattern[str]]:
    if isinstance(value, re.Pattern):
        if isinstance(value.pattern, str):
            yield value
    elif depth < 4 and isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _patterns_in(item, depth + 1)
    elif depth < 4 and isinstance(value, dict):
        for item in value.values():
            yield from _patterns_in(item, depth + 1)


# where each ``re`` function takes its flags, when they are passed by position
_FLAGS_AT = {"search": 2, "match": 2, "fullmatch": 2, "findall": 2, "finditer": 2, "split": 3, "sub": 4, "subn": 4}


def _inline_patterns(module: Any) -> Iterator[re.Pattern[str]]:
    """The patterns of ``re.<function>(<string literal>, …)`` calls in the module's source
    (compiled ones are found as objects: a ``re.compile`` is stored somewhere)."""
    tree = ast.parse(inspect.getsource(module))
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "re"
            and node.func.attr in _FLAGS_AT
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            continue
        at = _FLAGS_AT[node.func.attr]
        given = [kw.value for kw in node.keywords if kw.arg == "flags"] + node.args[at : at + 1]
        flags = eval(compile(ast.Expression(given[0]), "<flags>", "eval"), vars(module)) if given else 0
        yield re.compile(node.args[0].value, flags)


def _runtime_patterns() -> Iterator[tuple[str, re.Pattern[str]]]:
    """Patterns built from data: the catalog's matchers, the speaker-name matcher."""
    from service.catalog import Catalog
    from service.text import SpeakerNames

    catalog = Catalog.load()
    for name, value in vars(catalog).items():
        for p in _patterns_in(value):
            yield f"Catalog.{name}", p
        for attr in ("pattern",):
            p = getattr(value, attr, None)
            if isinstance(p, re.Pattern):
                yield f"Catalog.{name}.{attr}", p
    hostile = ["a", "a a", "a a a", "A-a", "a's", "just", "I", "Anna Lee", "Anna", "Lee", "x" * 128, "a " * 60 + "b"]
    yield "SpeakerNames", SpeakerNames(hostile).pattern


def all_patterns() -> dict[str, re.Pattern[str]]:
    """Every pattern, once (by its text and flags), under the first name it was found by."""
    found: dict[tuple[str, int], tuple[str, re.Pattern[str]]] = {}
    for module in _modules():
        for name, value in vars(module).items():
            for p in _patterns_in(value):
                found.setdefault((p.pattern, p.flags), (f"{module.__name__}.{name}", p))
        for i, p in enumerate(_inline_patterns(module)):
            found.setdefault((p.pattern, p.flags), (f"{module.__name__}:inline[{i}]", p))
    for name, p in _runtime_patterns():
        found.setdefault((p.pattern, p.flags), (name, p))
    return dict(found.values())


PATTERNS = all_patterns()


# -- what a part of a pattern can match -----------------------------------------------------------

Items = list[tuple[Any, Any]]


def _category(code: Any, ch: str, ascii_only: bool) -> bool:
    if ascii_only and not ch.isascii():
        return code in (sre.CATEGORY_NOT_DIGIT, sre.CATEGORY_NOT_SPACE, sre.CATEGORY_NOT_WORD)
    if code == sre.CATEGORY_DIGIT:
        return ch.isdecimal()
    if code == sre.CATEGORY_NOT_DIGIT:
        return not ch.isdecimal()
    if code == sre.CATEGORY_SPACE:
        return ch.isspace()
    if code == sre.CATEGORY_NOT_SPACE:
        return not ch.isspace()
    if code == sre.CATEGORY_WORD:
        return ch.isalnum() or ch == "_"
    if code == sre.CATEGORY_NOT_WORD:
        return not (ch.isalnum() or ch == "_")
    raise AssertionError(f"unexpected category {code}")


def _variants(ch: str, ignorecase: bool) -> set[str]:
    return {ch, ch.lower(), ch.upper(), ch.casefold()} if ignorecase else {ch}


def _char_matches(op: Any, av: Any, ch: str, flags: int) -> bool:
    """Whether a one-character item matches ``ch``."""
    ignorecase = bool(flags & re.IGNORECASE)
    ascii_only = bool(flags & re.ASCII)
    if op == sre.LITERAL:
        return bool(_variants(ch, ignorecase) & _variants(chr(av), ignorecase))
    if op == sre.NOT_LITERAL:
        return not (_variants(ch, ignorecase) & _variants(chr(av), ignorecase))
    if op == sre.ANY:
        return ch != "\n" or bool(flags & re.DOTALL)
    if op == sre.IN:
        negate = False
        hit = False
        for sub_op, sub_av in av:
            if sub_op == sre.NEGATE:
                negate = True
            elif sub_op == sre.LITERAL:
                hit = hit or bool(_variants(ch, ignorecase) & _variants(chr(sub_av), ignorecase))
            elif sub_op == sre.RANGE:
                lo, hi = sub_av
                hit = hit or any(len(v) == 1 and lo <= ord(v) <= hi for v in _variants(ch, ignorecase))
            elif sub_op == sre.CATEGORY:
                hit = hit or _category(sub_av, ch, ascii_only)
            else:
                raise AssertionError(f"unexpected set item {sub_op}")
        return hit != negate
    raise AssertionError(f"not a character item: {op}")


CHAR_ITEMS = (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN)


def _flags_of(av: Any, flags: int) -> int:
    _group, add, remove, _sub = av
    return (flags | add) & ~remove


# -- 1. the static check ---------------------------------------------------------------------------
#
# A part of a pattern as a small regular expression over the probe alphabet, to ask whether two
# parts can match the same text (Brzozowski derivatives: the derivative of an expression by a
# character matches what is left after that character). Look-arounds and anchors match
# nothing, so the languages here hold the pattern's: a pattern is never passed wrongly.

Node = tuple[Any, ...]
EMPTY: Node = ("0",)  # matches no text
EPS: Node = ("e",)  # matches only the empty text
ANY_CHAR: Node = ("c", frozenset(PROBES))
BOUND = 4  # copies of a bounded quantifier's body written out; above that, as unbounded


def _seq(a: Node, b: Node) -> Node:
    if EMPTY in (a, b):
        return EMPTY
    if a == EPS:
        return b
    if b == EPS:
        return a
    if a[0] == "s":
        return _seq(a[1], _seq(a[2], b))
    return ("s", a, b)


def _alt(nodes: Iterable[Node]) -> Node:
    flat: set[Node] = set()
    for n in nodes:
        if n[0] == "a":
            flat |= n[1]
        elif n != EMPTY:
            flat.add(n)
    if not flat:
        return EMPTY
    return next(iter(flat)) if len(flat) == 1 else ("a", frozenset(flat))


def _star(n: Node) -> Node:
    if n in (EMPTY, EPS):
        return EPS
    return n if n[0] == "*" else ("*", n)


@functools.cache
def _nullable(n: Node) -> bool:
    kind = n[0]
    if kind in ("e", "*"):
        return True
    if kind == "s":
        return _nullable(n[1]) and _nullable(n[2])
    if kind == "a":
        return any(_nullable(x) for x in n[1])
    return False


@functools.cache
def _starts(n: Node) -> frozenset[str]:
    kind = n[0]
    if kind == "c":
        return n[1]
    if kind == "s":
        return _starts(n[1]) | (_starts(n[2]) if _nullable(n[1]) else frozenset())
    if kind == "a":
        return frozenset().union(*(_starts(x) for x in n[1]))
    if kind == "*":
        return _starts(n[1])
    return frozenset()


@functools.cache
def _derive(n: Node, ch: str) -> Node:
    kind = n[0]
    if kind == "c":
        return EPS if ch in n[1] else EMPTY
    if kind == "s":
        first = _seq(_derive(n[1], ch), n[2])
        return _alt([first, _derive(n[2], ch)]) if _nullable(n[1]) else first
    if kind == "a":
        return _alt(_derive(x, ch) for x in n[1])
    if kind == "*":
        return _seq(_derive(n[1], ch), n)
    return EMPTY


def share_text(a: Node, b: Node, limit: int = 20_000) -> bool:
    """Whether two expressions match some text in common (not the empty one); True when it
    cannot tell within ``limit`` steps."""
    seen = {(a, b)}
    todo = [(a, b)]
    while todo:
        x, y = todo.pop()
        for ch in _starts(x) & _starts(y):
            pair = (_derive(x, ch), _derive(y, ch))
            if EMPTY in pair or pair in seen:
                continue
            if _nullable(pair[0]) and _nullable(pair[1]):
                return True
            if len(seen) > limit:
                return True
            seen.add(pair)
            todo.append(pair)
    return False


def as_node(items: Items, flags: int) -> Node:
    node = EPS
    for op, av in reversed(items):
        node = _seq(_node_of(op, av, flags), node)
    return node


def _node_of(op: Any, av: Any, flags: int) -> Node:
    if op in CHAR_ITEMS:
        return ("c", frozenset(ch for ch in PROBES if _char_matches(op, av, ch, flags)))
    if op in ZERO_WIDTH:
        return EPS
    if op == sre.SUBPATTERN:
        return as_node(av[3].data, _flags_of(av, flags))
    if op == sre.ATOMIC_GROUP:
        return as_node(av.data, flags)
    if op in REPEATS:
        lo, hi, body = av
        b = as_node(body.data, flags)
        node = EPS
        for _ in range(min(lo, BOUND)):
            node = _seq(node, b)
        if hi == UNBOUNDED or hi - lo > BOUND or lo > BOUND:
            return _seq(node, _star(b))
        for _ in range(hi - lo):
            node = _seq(node, _alt([EPS, b]))
        return node
    if op == sre.BRANCH:
        return _alt(as_node(alt.data, flags) for alt in av[1])
    if op == sre.GROUPREF_EXISTS:
        return _alt([as_node(av[1].data, flags), as_node(av[2].data, flags) if av[2] is not None else EPS])
    if op == sre.GROUPREF:
        return _star(ANY_CHAR)
    raise AssertionError(f"unexpected item {op}")


@dataclass
class Frame:
    """What may be matched after a point of the pattern: ``items[start:]``, then (a quantifier's
    body) the body again, then ``parent``; None at the end of the pattern or of an atomic part
    (an atomic group, a possessive quantifier, a look-around), which nothing after it can
    backtrack into."""

    items: Items
    start: int
    flags: int
    loop: Items | None = None
    parent: Frame | None = None


Body = tuple[Items, int]  # an unbounded quantifier's body, and the flags it is read with


def _leading_repeats(items: Items, flags: int) -> tuple[list[Body], bool]:
    """The unbounded quantifiers a sequence may start matching with, and whether the sequence
    can match nothing."""
    found: list[Body] = []
    for op, av in items:
        reps, nullable = _leading_of(op, av, flags)
        found += reps
        if not nullable:
            return found, False
    return found, True


def _leading_of(op: Any, av: Any, flags: int) -> tuple[list[Body], bool]:
    if op in REPEATS:
        lo, hi, body = av
        inner, nullable = _leading_repeats(body.data, flags)
        own = [(body.data, flags)] if hi == UNBOUNDED else []
        return own + inner, nullable or lo == 0
    if op == sre.SUBPATTERN:
        return _leading_repeats(av[3].data, _flags_of(av, flags))
    if op == sre.ATOMIC_GROUP:
        return _leading_repeats(av.data, flags)
    if op == sre.BRANCH:
        found: list[Body] = []
        nullable = False
        for alt in av[1]:
            r, n = _leading_repeats(alt.data, flags)
            found += r
            nullable = nullable or n
        return found, nullable
    if op == sre.GROUPREF_EXISTS:
        r1, n1 = _leading_repeats(av[1].data, flags)
        r2, n2 = _leading_repeats(av[2].data, flags) if av[2] is not None else ([], True)
        return r1 + r2, n1 or n2
    return [], op in ZERO_WIDTH


def _following_repeats(frame: Frame | None) -> list[Body]:
    """The unbounded quantifiers that may start right after a point, past anything that can
    match nothing."""
    found: list[Body] = []
    while frame is not None:
        reps, nullable = _leading_repeats(frame.items[frame.start :], frame.flags)
        found += reps
        if not nullable:
            break
        if frame.loop is not None:
            found += _leading_repeats(frame.loop, frame.flags)[0]
        frame = frame.parent
    return found


def _alternatives_of(items: Items, flags: int) -> list[Node] | None:
    """A body that is one alternation: its alternatives."""
    if len(items) != 1:
        return None
    op, av = items[0]
    if op == sre.BRANCH:
        return [as_node(alt.data, flags) for alt in av[1]]
    if op == sre.SUBPATTERN:
        return _alternatives_of(av[3].data, _flags_of(av, flags))
    return None


def competing_quantifiers(pattern: re.Pattern[str]) -> list[str]:
    """Why the pattern's quantifiers can backtrack super-linearly (empty: they cannot)."""
    tree = sre_parse.parse(pattern.pattern, pattern.flags)
    problems: list[str] = []

    def visit(items: Items, flags: int, after: Frame | None, loop: Items | None) -> None:
        for i, (op, av) in enumerate(items):
            cont = Frame(items, i + 1, flags, loop, after)
            if op in REPEATS:
                _lo, hi, body = av
                if hi == UNBOUNDED and op != sre.POSSESSIVE_REPEAT:
                    problems.extend(_compete(body.data, flags, cont, items[i]))
                visit(body.data, flags, None if op == sre.POSSESSIVE_REPEAT else cont, body.data)
            elif op == sre.SUBPATTERN:
                visit(av[3].data, _flags_of(av, flags), cont, None)
            elif op == sre.ATOMIC_GROUP:
                visit(av.data, flags, None, None)
            elif op in (sre.ASSERT, sre.ASSERT_NOT):
                visit(av[1].data, flags, None, None)
            elif op == sre.BRANCH:
                for alt in av[1]:
                    visit(alt.data, flags, cont, None)
            elif op == sre.GROUPREF_EXISTS:
                for branch in av[1:]:
                    if branch is not None:
                        visit(branch.data, flags, cont, None)

    visit(tree.data, tree.state.flags, None, None)
    return problems


def _compete(body: Items, flags: int, cont: Frame, item: tuple[Any, Any]) -> list[str]:
    """How an unbounded, backtracking quantifier can split text in many ways."""
    where = f"the quantifier {_describe(item)}"
    own = as_node(body, flags)
    if _nullable(own):
        return [f"{where} repeats a body that can match nothing"]
    runs = _seq(own, _star(own))
    problems = []
    for other_items, other_flags in _following_repeats(cont):
        other = as_node(other_items, other_flags)
        if share_text(runs, _seq(other, _star(other))):
            problems.append(f"{where} and a quantifier that can follow it match the same text")
    alternatives = _alternatives_of(body, flags) or []
    for a, b in itertools.combinations(alternatives, 2):
        if share_text(_seq(a, _star(own)), _seq(b, _star(own))):
            problems.append(f"{where} reads the same text through two of its alternatives")
            break
    return problems


def _describe(item: tuple[Any, Any]) -> str:
    text = str(item)
    return text if len(text) <= 100 else text[:97] + "..."


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_no_two_quantifiers_compete_for_the_same_text(name):
    assert competing_quantifiers(PATTERNS[name]) == [], PATTERNS[name].pattern


# -- 2. the growth of work ---------------------------------------------------------------------------


def _sample(items: Items, flags: int, choice: int = 0) -> str:
    """A short text the sequence matches (look-arounds ignored); ``choice`` picks the
    alternative of the first alternation met."""
    out = []
    for op, av in items:
        out.append(_sample_of(op, av, flags, choice))
        choice = 0
    return "".join(out)


_PREFERRED = "ae A1.,-'\n"


def _sample_of(op: Any, av: Any, flags: int, choice: int = 0) -> str:
    if op in CHAR_ITEMS:
        for ch in itertools.chain(_PREFERRED, PROBES):
            if _char_matches(op, av, ch, flags):
                return ch
        return ""
    if op in ZERO_WIDTH or op == sre.GROUPREF:
        return ""
    if op == sre.SUBPATTERN:
        return _sample(av[3].data, _flags_of(av, flags), choice)
    if op == sre.ATOMIC_GROUP:
        return _sample(av.data, flags, choice)
    if op in REPEATS:
        lo, _hi, body = av
        return _sample(body.data, flags, choice) * lo
    if op == sre.BRANCH:
        alts = av[1]
        return _sample(alts[choice % len(alts)].data, flags)
    if op == sre.GROUPREF_EXISTS:
        return _sample(av[1].data, flags)
    raise AssertionError(f"unexpected item {op}")


def _alternatives(items: Items, flags: int) -> int:
    """How many alternatives the first alternation of a sequence has (1: none)."""
    for op, av in items:
        if op == sre.BRANCH:
            return len(av[1])
        if op == sre.SUBPATTERN:
            return _alternatives(av[3].data, _flags_of(av, flags))
        if op in CHAR_ITEMS or (op in REPEATS and av[0] > 0):
            return 1
    return 1


@dataclass(eq=False)
class Repeat:
    """An unbounded quantifier and a text the pattern matches up to it."""

    body: Items
    flags: int
    before: str


def _repeats_with_prefixes(pattern: re.Pattern[str]) -> list[Repeat]:
    """Every unbounded quantifier, with a text the pattern matches up to it."""
    tree = sre_parse.parse(pattern.pattern, pattern.flags)
    found: list[Repeat] = []

    def visit(items: Items, flags: int, before: str) -> None:
        here = before
        for op, av in items:
            if op in REPEATS:
                _lo, hi, body = av
                if hi == UNBOUNDED:
                    found.append(Repeat(body.data, flags, here))
                visit(body.data, flags, here)
            elif op == sre.SUBPATTERN:
                visit(av[3].data, _flags_of(av, flags), here)
            elif op == sre.ATOMIC_GROUP:
                visit(av.data, flags, here)
            elif op in (sre.ASSERT, sre.ASSERT_NOT):
                visit(av[1].data, flags, here)
            elif op == sre.BRANCH:
                for alt in av[1]:
                    visit(alt.data, flags, here)
            here += _sample_of(op, av, flags)

    visit(tree.data, tree.state.flags, "")
    return found


def _words(pattern: re.Pattern[str]) -> list[str]:
    """The literal words of a pattern ("just", "kind of" → "kind"), in order, once each."""
    tree = sre_parse.parse(pattern.pattern, pattern.flags)
    words: dict[str, None] = {}

    def visit(items: Items) -> None:
        run = []
        for op, av in items:
            if op == sre.LITERAL and chr(av).isalnum():
                run.append(chr(av))
                continue
            if run:
                words.setdefault("".join(run))
                run = []
            if op in REPEATS:
                visit(av[2].data)
            elif op == sre.SUBPATTERN:
                visit(av[3].data)
            elif op == sre.ATOMIC_GROUP:
                visit(av.data)
            elif op in (sre.ASSERT, sre.ASSERT_NOT):
                visit(av[1].data)
            elif op == sre.BRANCH:
                for alt in av[1]:
                    visit(alt.data)
        if run:
            words.setdefault("".join(run))

    visit(tree.data)
    return list(words)


# texts repeated to length: separators, blanks, punctuation, letters, digits, and mixes of them
GENERIC = (
    " ", "\n", "\t", ",", ".", "-", "'", "!", "?", "…", "$", "_", "a", "A", "1", "é", "😀",
    "a ", "A ", "Aa ", "a.", ". ", ", ", "1,", "1 ", "$1 ", "a-", "a'", "a's ", "a, ", "a. ", "a? ", "\na", " - ",
)  # fmt: skip
FAIL = "\x00"  # ends a hostile text: no pattern here expects it
TEXTS_PER_QUANTIFIER = 4
WORDS_PER_PATTERN = 8


@dataclass
class Hostile:
    """A hostile text: ``head``, then ``unit`` repeated to the size asked, then ``tail``."""

    head: str
    unit: str
    tail: str = FAIL
    why: str = field(default="", compare=False)

    def at(self, size: int) -> str:
        return self.head + self.unit * max(1, (size - len(self.head)) // max(1, len(self.unit))) + self.tail


def _chars(node: Node) -> frozenset[str]:
    """Every character an expression can match somewhere."""
    kind = node[0]
    if kind == "c":
        return node[1]
    if kind == "s":
        return _chars(node[1]) | _chars(node[2])
    if kind == "a":
        return frozenset().union(*(_chars(x) for x in node[1]))
    if kind == "*":
        return _chars(node[1])
    return frozenset()


def hostile_texts(pattern: re.Pattern[str]) -> list[Hostile]:
    """Texts that make a backtracking match of ``pattern`` work hard, if anything does: only an
    unbounded quantifier can (without one, a match attempt is bounded by the pattern's own
    size), and only on text it can read."""
    repeats = _repeats_with_prefixes(pattern)
    if not repeats:
        return []
    readable = frozenset().union(*(_chars(as_node(r.body, r.flags)) for r in repeats))
    texts = []
    for unit in GENERIC:
        if set(unit) & readable:
            texts += [Hostile("", unit, FAIL, f"{unit!r} repeated"), Hostile("", unit, "", f"{unit!r} to the end")]
    for word in _words(pattern)[:WORDS_PER_PATTERN]:
        texts += [Hostile("", word + " ", FAIL, f"{word!r} repeated"), Hostile("", word, FAIL, f"{word!r} glued")]
    prefixes: dict[str, list[str]] = {}
    for rep in repeats:
        for choice in range(min(TEXTS_PER_QUANTIFIER, _alternatives(rep.body, rep.flags))):
            pump = _sample(rep.body, rep.flags, choice)
            heads = prefixes.setdefault(pump, [])
            if not pump or rep.before in heads or len(heads) >= 3:
                continue
            heads.append(rep.before)
            texts.append(Hostile(rep.before, pump, FAIL, f"after {rep.before!r}, {pump!r} repeated"))
            if rep.before:  # what leads to the quantifier, many times over: each is a new start
                texts.append(Hostile("", rep.before + pump, FAIL, f"{rep.before + pump!r} repeated"))
                texts.append(Hostile("", rep.before + " ", FAIL, f"{rep.before + ' '!r} repeated"))
    unique: dict[tuple[str, str, str], Hostile] = {}
    for t in texts:
        unique.setdefault((t.head, t.unit, t.tail), t)
    return list(unique.values())


def _scan(pattern: re.Pattern[str], text: str) -> None:
    for _ in pattern.finditer(text):
        pass


def _cpu(work: Callable[[], None], repeat: int) -> float:
    started = time.thread_time()
    for _ in range(repeat):
        work()
    return time.thread_time() - started


def growth(work: Callable[[str], None], small: str, large: str) -> float:
    """How many times more CPU ``work`` takes on ``large`` than on ``small``, divided by how
    many times longer ``large`` is (1: linear work; the size ratio: quadratic). Measured
    once, and when that is over the limit twice more, keeping the least."""
    repeat = 1
    while _cpu(lambda: work(small), repeat) < MIN_MEASURE_S and repeat < 1 << 16:
        repeat *= 4
    small_cpu = large_cpu = math.inf
    for round_ in range(3):
        small_cpu = min(small_cpu, _cpu(lambda: work(small), repeat))
        large_cpu = min(large_cpu, _cpu(lambda: work(large), repeat))
        ratio = (large_cpu / max(small_cpu, 1e-9)) / (len(large) / len(small))
        if round_ == 0 and ratio <= GROWTH_LIMIT:
            break
    return ratio


def climb(work: Callable[[str], None], text: Hostile, sizes: tuple[int, ...]) -> tuple[float, int]:
    """The largest growth of work between successive sizes, and the size it was met at (the
    climb stops at the first step over the limit: a polynomial of high degree must fail
    fast, not hang)."""
    worst, at = 0.0, sizes[0]
    for small, large in itertools.pairwise(sizes):
        g = growth(work, text.at(small), text.at(large))
        if small < STEADY:
            if g > EARLY_LIMIT:
                return g, large
            continue
        if g > worst:
            worst, at = g, large
        if g > GROWTH_LIMIT:
            break
    return worst, at


def check_growth(work: Callable[[str], None], texts: list[Hostile]) -> list[str]:
    """Every text up the small ladder; the two most suspicious again up to 64 KB."""
    climbed = sorted(((*climb(work, t, LADDER), t) for t in texts), key=lambda x: -x[0])
    worst = [(g, at, t) for g, at, t in climbed if g > GROWTH_LIMIT]
    if not worst:
        worst = [
            (g, at, t) for g, at, t in (((*climb(work, t, LARGE), t) for _, _, t in climbed[:2])) if g > GROWTH_LIMIT
        ]
    return [
        f"work grew {g * SIZE_RATIO:.0f}x for {SIZE_RATIO}x the text, up to {at} chars: {t.why}"
        for g, at, t in worst[:5]
    ]


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_the_work_of_a_match_grows_linearly_with_hostile_text(name):
    pattern = PATTERNS[name]
    assert check_growth(lambda text: _scan(pattern, text), hostile_texts(pattern)) == []


# -- the rule extractor as a whole -----------------------------------------------------------------

# messages of one unit repeated: the review's (a subject then fillers, a stance before "you",
# a run of blanks after "order"), and units that give a sentence many matches to loop over
# (cues, catalog words, clauses, dates, prices, purchases, names)
HOSTILE_MESSAGES = (
    ("i ", "just "), ("", "i glad "), ("", "I am "), ("", "I love "), ("", "Would "), ("I bought it, order", " "),
    ("$1", ",111"), ("", "my little "), ("", "I love oak "), ("", "I love oak table "), ("", "I love oak, "),
    ("", "I don't love glass, "), ("", "oak "), ("", "my wife Emma, "), ("", ", and my wife x"), ("", ", and I "),
    ("", "Anna and I "), ("", "Tom likes oak and I "), ("", "yesterday "), ("", "$5 "), ("", "in navy "),
    ("", "I bought a sofa and "), ("", "I bought the Arlo sofa, "), ("", "I bought four bar stools and "),
    ("", "I'm Sarah "), ("", "we live in Seattle "), ("", "a cat named Luna "), ("", "I went to a party "),
    ("", "I want a sofa, not "), ("", "the Harlow "), ("", "Oh, "),
)  # fmt: skip
EXTRACTION_LADDER = (256, 1024, 4096, 16384)  # a message is mined on its first 20,000 characters


@pytest.mark.parametrize(("head", "unit"), [("", u) for u in GENERIC] + list(HOSTILE_MESSAGES))
def test_rule_extraction_grows_linearly_with_hostile_messages(head, unit):
    """The Python around the patterns too: a loop over a sentence's matches that looks at all
    the others (every cue at every catalog word) is quadratic without any pattern being so."""
    from datetime import UTC, datetime

    from service.catalog import Catalog
    from service.extraction.rules import RuleExtractor

    extractor = RuleExtractor(Catalog.load())
    at = datetime(2024, 5, 16, tzinfo=UTC)
    text = Hostile(head, unit, "x", f"{head + unit!r} repeated")
    worst, size = climb(lambda message: extractor.extract(message, at=at), text, EXTRACTION_LADDER)
    assert worst <= GROWTH_LIMIT, f"work grew {worst * SIZE_RATIO:.0f}x for {SIZE_RATIO}x the message at {size} chars"
