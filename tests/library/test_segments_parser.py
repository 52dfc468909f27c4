"""The segment expression parser: a table of valid and invalid inputs, and a round trip."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bitcore.segments.parser import (
    MAX_DEPTH,
    MAX_LENGTH,
    BinOp,
    Event,
    Node,
    Not,
    SegmentRef,
    SegmentSyntaxError,
    Unique,
    format_expression,
    parse_expression,
    references,
)
from bitcore.validation import check_event_name


def And(*ops: Node) -> BinOp:  # noqa: N802 - reads like the grammar
    return BinOp("AND", ops)


def Or(*ops: Node) -> BinOp:  # noqa: N802
    return BinOp("OR", ops)


def Xor(*ops: Node) -> BinOp:  # noqa: N802
    return BinOp("XOR", ops)


a, b, c, d = Event("a"), Event("b"), Event("c"), Event("d")

VALID = [
    ("a", a),
    ("  a  ", a),
    ("song:played", Event("song:played")),
    ("v1.2-beta_x", Event("v1.2-beta_x")),
    ("42", Event("42")),
    ("café", Event("café")),
    ('"signed up"', Event("signed up")),
    ('"say \\"hi\\""', Event('say "hi"')),
    ('"back\\\\slash"', Event("back\\slash")),
    ('"and"', Event("and")),
    ("a AND b", And(a, b)),
    ("a and b", And(a, b)),
    ("a aNd b", And(a, b)),
    ("a&b", And(a, b)),
    ("a & b & c", And(a, b, c)),
    ("a | b", Or(a, b)),
    ("a OR b", Or(a, b)),
    ("a ^ b", Xor(a, b)),
    ("a xor b", Xor(a, b)),
    ("~a", Not(a)),
    ("NOT a", Not(a)),
    ("not not a", Not(Not(a))),
    # precedence: NOT > AND > XOR > OR
    ("a | b & c", Or(a, And(b, c))),
    ("a & b | c", Or(And(a, b), c)),
    ("a ^ b & c", Xor(a, And(b, c))),
    ("a | b ^ c", Or(a, Xor(b, c))),
    ("a | b ^ c & ~d", Or(a, Xor(b, And(c, Not(d))))),
    ("~a & b", And(Not(a), b)),
    ("(a | b) & c", And(Or(a, b), c)),
    ("((a))", a),
    ("~(a | b)", Not(Or(a, b))),
    ("(a & b) & c", And(And(a, b), c)),
    ("unique(premium)", Unique("premium")),
    ('UNIQUE("paid plan")', Unique("paid plan")),
    ("unique", Event("unique")),
    ("unique & a", And(Event("unique"), a)),
    ("@engaged", SegmentRef("engaged")),
    ('@"ios users"', SegmentRef("ios users")),
    ("a & @seg | unique(p)", Or(And(a, SegmentRef("seg")), Unique("p"))),
    ("a\n&\tb", And(a, b)),
]


@pytest.mark.parametrize(("text", "tree"), VALID)
def test_valid_expressions_parse_to_their_tree(text: str, tree: Node) -> None:
    assert parse_expression(text) == tree


ATOM = "an event, '(', 'NOT', 'unique(...)' or '@segment'"
OPERATOR = "an operator (AND, OR, XOR, &, |, ^)"

INVALID = [
    # text, expected (start of), line, column
    ("", ATOM, 1, 1),
    ("   ", ATOM, 1, 4),
    ("a &", ATOM, 1, 4),
    ("a & & b", ATOM, 1, 5),
    ("& a", ATOM, 1, 1),
    ("a b", OPERATOR, 1, 3),
    ("a)", OPERATOR + " or the end of the expression: this ')' has no '('", 1, 2),
    ("(a", "')' (to close the '(' at column 1)", 1, 3),
    ("a & (b | c", "')' (to close the '(' at column 5)", 1, 11),
    ("()", ATOM, 1, 2),
    ("NOT", ATOM, 1, 4),
    ("a AND", ATOM, 1, 6),
    ("a or not", ATOM, 1, 9),
    ('"abc', "a closing '\"' (for the one at position 1)", 1, 5),
    ('"a\\x"', "'\\\"' or '\\\\' after a backslash", 1, 3),
    ('""', "a non-empty name between the quotes", 1, 1),
    ("a $ b", "a name (letters, digits, ':_.-' or \"quoted\"), an operator or a parenthesis", 1, 3),
    ("a = b", "a name (letters, digits, ':_.-' or \"quoted\"), an operator or a parenthesis", 1, 3),
    ("unique(", "an event name inside unique(...)", 1, 8),
    ("unique()", "an event name inside unique(...)", 1, 8),
    ("unique(a", "')' to close unique(...)", 1, 9),
    ("unique(a b)", "')' to close unique(...)", 1, 10),
    ("@", "a segment name after '@'", 1, 2),
    ("@ & a", "a segment name after '@'", 1, 3),
    ("@(a)", "a segment name after '@'", 1, 2),
    ("a &\n  (b |", ATOM, 2, 7),
    ("a\n)", OPERATOR, 2, 1),
    ("~" * (MAX_DEPTH + 1) + "a", f"at most {MAX_DEPTH} levels of nesting", 1, MAX_DEPTH + 1),
    ("(" * (MAX_DEPTH + 1) + "a", f"at most {MAX_DEPTH} levels of nesting", 1, MAX_DEPTH + 1),
    ("a" * (MAX_LENGTH + 1), f"at most {MAX_LENGTH} characters", 1, MAX_LENGTH + 1),
]


@pytest.mark.parametrize(("text", "expected", "line", "column"), INVALID)
def test_invalid_expressions_say_what_was_expected_and_where(
    text: str, expected: str, line: int, column: int
) -> None:
    with pytest.raises(SegmentSyntaxError) as caught:
        parse_expression(text)
    error = caught.value
    assert error.expected.startswith(expected)
    assert (error.line, error.column) == (line, column)
    assert f"at line {line}, column {column}" in str(error)
    assert str(error).startswith("expected ")


def test_error_carries_the_offending_line_and_span_for_underlining() -> None:
    with pytest.raises(SegmentSyntaxError) as caught:
        parse_expression("active &\nsignup $$ churned")
    error = caught.value
    assert error.line_text == "signup $$ churned"
    assert error.line_text[error.column - 1 : error.column - 1 + error.length] == "$"
    assert error.as_dict()["position"] == len("active &\nsignup ")


def test_deepest_allowed_nesting_parses() -> None:
    text = "(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH
    assert parse_expression(text) == a
    assert parse_expression("~" * MAX_DEPTH + "a") is not None


def test_longest_allowed_expression_parses() -> None:
    assert parse_expression("a" * MAX_LENGTH) == Event("a" * MAX_LENGTH)


def test_non_strings_are_refused() -> None:
    with pytest.raises(TypeError):
        parse_expression(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "column", "found"),
    [
        ('active | "bitop"', 10, "'\"bitop\"'"),
        ("bitop_AND_x", 1, "'bitop_AND_x'"),
        ('a & "bitop_AND_trackist_a_2025-1-trackist_b_2025-1"', 5, None),
        ("unique(bitop)", 8, "'bitop'"),
        ('a | ~unique("bitop_OR_")', 13, None),
    ],
)
def test_event_names_the_library_refuses_are_syntax_errors(
    text: str, column: int, found: str | None
) -> None:
    """One rule for events everywhere: what ``check_event_name`` refuses, the parser refuses, with
    its reason and where, instead of an expression that later fails deep inside the library."""
    with pytest.raises(SegmentSyntaxError) as caught:
        parse_expression(text)
    error = caught.value
    assert error.expected.startswith("an event name bitcore accepts")
    assert "reserved" in str(error)
    assert error.column == column
    if found is not None:
        assert error.found == found


def test_segment_references_may_use_names_events_may_not() -> None:
    """``@bitop`` names a saved segment (checked by segment-name rules), not an event key."""
    assert parse_expression("@bitop") == SegmentRef("bitop")


@pytest.mark.parametrize(
    ("text", "tree"),
    [("é & 日本", And(Event("é"), Event("日本"))), ('"a\x00b"', Event("a\x00b"))],
)
def test_non_ascii_and_quoted_nul_are_names(text: str, tree: Node) -> None:
    assert parse_expression(text) == tree


@pytest.mark.parametrize("text", ["a\x00b", '"\ud800"', 'unique("x\udfff")'])
def test_bare_nul_and_lone_surrogates_are_syntax_errors(text: str) -> None:
    """A lone surrogate cannot be encoded for Redis: refused here, not by a UnicodeEncodeError."""
    with pytest.raises(SegmentSyntaxError):
        parse_expression(text)


def test_references_lists_segment_names_only() -> None:
    tree = parse_expression('@a & (b | ~@"c d") ^ unique(e) | @a')
    assert references(tree) == {"a", "c d"}


# --- round trip: format_expression prints text that parses back to the same tree


def _accepted(name: str) -> bool:
    """Whether the library takes ``name`` as an event name (the parser refuses the others)."""
    try:
        check_event_name(name)
    except (TypeError, ValueError):
        return False
    return True


names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1
).filter(_accepted)
leaves = st.one_of(st.builds(Event, names), st.builds(Unique, names), st.builds(SegmentRef, names))


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    ops = st.sampled_from(["AND", "OR", "XOR"])
    return st.one_of(
        st.builds(Not, children),
        st.builds(BinOp, ops, st.lists(children, min_size=2, max_size=3).map(tuple)),
    )


trees = st.recursive(leaves, _extend, max_leaves=8)


def _height(node: Node) -> int:
    if isinstance(node, Not):
        return 1 + _height(node.operand)
    if isinstance(node, BinOp):
        return 1 + max(_height(child) for child in node.operands)
    return 0


@given(trees)
def test_format_then_parse_is_the_identity(tree: Node) -> None:
    text = format_expression(tree)
    assume(len(text) <= MAX_LENGTH and _height(tree) <= MAX_DEPTH // 2)
    assert parse_expression(text) == tree
