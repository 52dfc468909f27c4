"""Segment expressions: text -> AST, by hand-written recursive descent (pure code, never ``eval``).

The language::

    expression := or_expr
    or_expr    := xor_expr  (("OR"  | "|") xor_expr)*
    xor_expr   := and_expr  (("XOR" | "^") and_expr)*
    and_expr   := not_expr  (("AND" | "&") not_expr)*
    not_expr   := ("NOT" | "~") not_expr | atom
    atom       := "(" expression ")" | event | "unique(" name ")" | "@" name
    event, name:= bare | quoted
    bare       := letters, digits, ":", "_", ".", "-"     active, song:played, v1.2-beta
    quoted     := '"' ... '"', escapes \\" and \\\\         "signed up", "and"

Precedence, tightest first: NOT > AND > XOR > OR, so ``a | b & ~c`` is ``a | (b & (~c))``.
Keywords are case-insensitive; an event spelled like one (``and``, ``not``) must be quoted.
``unique(premium)`` is the dateless event ``trackist_premium_u`` whatever the period;
``@engaged`` / ``@"ios users"`` is another saved segment, evaluated for the same period.

Errors say what was expected and where (1-based line and column):

>>> try:
...     parse_expression("active & (signup | ")
... except SegmentSyntaxError as error:
...     print(error.expected, "| column", error.column)
an event, '(', 'NOT', 'unique(...)' or '@segment' | column 20
>>> format_expression(parse_expression("a and not (b or unique(c)) xor @seg"))
'(a & ~(b | unique(c))) ^ @seg'
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

from bitcore.segments.errors import SegmentError
from bitcore.validation import check_event_name

#: Longest expression accepted, in characters.
MAX_LENGTH = 2000
#: Deepest nesting of parentheses and NOTs accepted.
MAX_DEPTH = 32

BinaryOp = Literal["AND", "OR", "XOR"]
_KEYWORDS = {"and": "AND", "or": "OR", "xor": "XOR", "not": "NOT"}
_SYMBOLS = {"&": "AND", "|": "OR", "^": "XOR", "~": "NOT", "(": "(", ")": ")", "@": "@"}
_SYMBOL_OF = {"AND": "&", "OR": "|", "XOR": "^"}
_ATOM_START = "an event, '(', 'NOT', 'unique(...)' or '@segment'"


def is_bare_char(ch: str) -> bool:
    """Characters an event name may use unquoted."""
    return ch.isalnum() or ch in ":_.-"


# --- the AST: frozen dataclasses, so equal trees compare equal (positions are left out of equality)


@dataclass(frozen=True)
class Event:
    """The users who did ``name`` in the period being evaluated."""

    name: str
    position: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Unique:
    """The users flagged by the dateless (unique) event ``name``."""

    name: str
    position: int = field(default=0, compare=False)


@dataclass(frozen=True)
class SegmentRef:
    """The users of another saved segment, for the same period."""

    name: str
    position: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Not:
    """Users in the universe but not in ``operand``."""

    operand: Node
    position: int = field(default=0, compare=False)


@dataclass(frozen=True)
class BinOp:
    """``op`` over two or more operands (a chain of the same operator is kept flat)."""

    op: BinaryOp
    operands: tuple[Node, ...]
    position: int = field(default=0, compare=False)


Node = Event | Unique | SegmentRef | Not | BinOp


class SegmentSyntaxError(SegmentError):
    """A parse error: what was ``expected``, at ``position`` (0-based), ``length`` long."""

    def __init__(
        self, expected: str, text: str, position: int, length: int = 1, found: str | None = None
    ) -> None:
        self.expected = expected
        self.text = text
        self.position = position
        self.length = max(length, 1)
        self.line = text.count("\n", 0, position) + 1
        line_start = text.rfind("\n", 0, position) + 1
        self.column = position - line_start + 1
        line_end = text.find("\n", position)
        self.line_text = text[line_start : len(text) if line_end == -1 else line_end]
        if found is None:
            found = (
                "the end of the expression"
                if position >= len(text)
                else repr(text[position : position + self.length])
            )
        self.found = found
        super().__init__(
            f"expected {expected} at line {self.line}, column {self.column}, found {found}"
        )

    def as_dict(self) -> dict[str, object]:
        """The error as plain data, for a JSON API."""
        return {
            "message": str(self),
            "expected": self.expected,
            "line": self.line,
            "column": self.column,
            "position": self.position,
            "length": self.length,
            "line_text": self.line_text,
        }


@dataclass(frozen=True)
class _Token:
    kind: str  # "NAME", "STRING", "AND", "OR", "XOR", "NOT", "(", ")", "@", "END"
    value: str
    position: int
    length: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _SYMBOLS:
            tokens.append(_Token(_SYMBOLS[ch], ch, i, 1))
            i += 1
        elif ch == '"':
            start, i, chars = i, i + 1, []
            while True:
                if i >= n:
                    raise SegmentSyntaxError(
                        f"a closing '\"' (for the one at position {start + 1})",
                        text,
                        n,
                        found="the end of the expression",
                    )
                if text[i] == "\\":
                    if i + 1 >= n or text[i + 1] not in '"\\':
                        raise SegmentSyntaxError("'\\\"' or '\\\\' after a backslash", text, i, 2)
                    chars.append(text[i + 1])
                    i += 2
                elif text[i] == '"':
                    i += 1
                    break
                else:
                    chars.append(text[i])
                    i += 1
            tokens.append(_Token("STRING", "".join(chars), start, i - start))
        elif is_bare_char(ch):
            start = i
            while i < n and is_bare_char(text[i]):
                i += 1
            word = text[start:i]
            kind = _KEYWORDS.get(word.lower(), "NAME")
            tokens.append(_Token(kind, word, start, i - start))
        else:
            raise SegmentSyntaxError(
                "a name (letters, digits, ':_.-' or \"quoted\"), an operator or a parenthesis",
                text,
                i,
            )
    tokens.append(_Token("END", "", n, 1))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def error(self, expected: str, token: _Token | None = None) -> SegmentSyntaxError:
        token = token or self.token
        return SegmentSyntaxError(expected, self.text, token.position, token.length)

    def advance(self) -> _Token:
        token = self.token
        self.index += 1
        return token

    def nested(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SegmentSyntaxError(
                f"at most {MAX_DEPTH} levels of nesting (parentheses and NOTs)",
                self.text,
                token.position,
                token.length,
                found="deeper nesting",
            )

    def parse(self) -> Node:
        node = self.binary(0)
        if self.token.kind != "END":
            expected = "an operator (AND, OR, XOR, &, |, ^)"
            if self.token.kind == ")":
                expected += " or the end of the expression: this ')' has no '('"
            raise self.error(expected)
        return node

    _LEVELS: tuple[BinaryOp, ...] = ("OR", "XOR", "AND")

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        op = self._LEVELS[level]
        first = self.binary(level + 1)
        operands = [first]
        position = self.token.position  # the first operator: where the operation is reported
        while self.token.kind == op:
            self.advance()
            operands.append(self.binary(level + 1))
        if len(operands) == 1:
            return first
        return BinOp(op, tuple(operands), position)

    def unary(self) -> Node:
        token = self.token
        if token.kind == "NOT":
            self.advance()
            self.nested(token)
            operand = self.unary()
            self.depth -= 1
            return Not(operand, token.position)
        return self.atom()

    def atom(self) -> Node:
        token = self.token
        if token.kind == "(":
            self.advance()
            self.nested(token)
            node = self.binary(0)
            if self.token.kind != ")":
                raise self.error(f"')' (to close the '(' at column {self.column_of(token)})")
            self.advance()
            self.depth -= 1
            return node
        if token.kind == "@":
            self.advance()
            name = self.name("a segment name after '@'", event=False)
            return SegmentRef(name, token.position)
        if token.kind == "NAME" and token.value.lower() == "unique" and self.peek().kind == "(":
            self.advance()
            self.advance()
            name = self.name("an event name inside unique(...)")
            if self.token.kind != ")":
                raise self.error("')' to close unique(...)")
            self.advance()
            return Unique(name, token.position)
        if token.kind in ("NAME", "STRING"):
            self.advance()
            return Event(self.checked_name(token), token.position)
        raise self.error(_ATOM_START)

    def peek(self) -> _Token:
        return self.tokens[min(self.index + 1, len(self.tokens) - 1)]

    def column_of(self, token: _Token) -> int:
        return token.position - (self.text.rfind("\n", 0, token.position) + 1) + 1

    def name(self, expected: str, *, event: bool = True) -> str:
        token = self.token
        if token.kind not in ("NAME", "STRING"):
            raise self.error(expected)
        self.advance()
        return self.checked_name(token, event=event)

    def checked_name(self, token: _Token, *, event: bool = True) -> str:
        """The token's name; an event name must be one the library accepts (not ``bitop``...),
        and any name must be text Redis can store (no lone surrogates)."""
        if not token.value:
            raise self.error("a non-empty name between the quotes", token)
        try:
            token.value.encode("utf-8")
        except UnicodeEncodeError:
            raise self.error("a name of valid Unicode text", token) from None
        if event:
            try:
                check_event_name(token.value)
            except (TypeError, ValueError) as refusal:
                raise self.error(f"an event name bitcore accepts ({refusal})", token) from None
        return token.value


def parse_expression(text: str) -> Node:
    """The AST of ``text``, or a ``SegmentSyntaxError`` saying what was expected and where.

    >>> tree = parse_expression("active AND NOT churned")
    >>> tree == BinOp("AND", (Event("active"), Not(Event("churned"))))
    True
    """
    if not isinstance(text, str):
        raise TypeError(f"a segment expression must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise SegmentSyntaxError(
            f"at most {MAX_LENGTH} characters",
            text,
            MAX_LENGTH,
            len(text) - MAX_LENGTH,
            found=f"{len(text)} characters",
        )
    return _parsed(text)


@functools.lru_cache(maxsize=1024)
def _parsed(text: str) -> Node:
    """``text``'s tree, kept for the next call (trees are immutable): a compared report parses
    each segment's expression for every period of every shard it reads."""
    return _Parser(text).parse()


# --- helpers over trees


def references(node: Node) -> set[str]:
    """Names of the saved segments ``node`` refers to directly."""
    if isinstance(node, SegmentRef):
        return {node.name}
    if isinstance(node, Not):
        return references(node.operand)
    if isinstance(node, BinOp):
        return set().union(*(references(child) for child in node.operands))
    return set()


def leaves(node: Node) -> tuple[set[str], set[str]]:
    """The event names ``node`` uses directly: ``(dated events, unique events)`` (saved segments
    it refers to are not opened)."""
    if isinstance(node, Event):
        return {node.name}, set()
    if isinstance(node, Unique):
        return set(), {node.name}
    children = (node.operand,) if isinstance(node, Not) else getattr(node, "operands", ())
    events: set[str] = set()
    uniques: set[str] = set()
    for child in children:
        more_events, more_uniques = leaves(child)
        events |= more_events
        uniques |= more_uniques
    return events, uniques


def quote_name(name: str) -> str:
    """``name`` bare when it can be, else quoted with escapes; keywords are always quoted."""
    if name and all(is_bare_char(ch) for ch in name) and name.lower() not in _KEYWORDS:
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_expression(node: Node) -> str:
    """Canonical text for ``node``: ``parse_expression(format_expression(n)) == n``."""
    if isinstance(node, Event):
        return quote_name(node.name)
    if isinstance(node, Unique):
        return f"unique({quote_name(node.name)})"
    if isinstance(node, SegmentRef):
        return f"@{quote_name(node.name)}"
    if isinstance(node, Not):
        inner = format_expression(node.operand)
        return (
            f"~{inner}"
            if isinstance(node.operand, Event | Unique | SegmentRef | Not)
            else f"~({inner})"
        )
    parts = []
    for child in node.operands:
        text = format_expression(child)
        parts.append(f"({text})" if isinstance(child, BinOp) else text)
    return f" {_SYMBOL_OF[node.op]} ".join(parts)
