"""Saved segments: named set expressions over events, evaluated for any period into a ``Bitmap``.

``parser`` (text -> AST, pure), ``evaluate`` (AST + period -> a ``SegmentBitmap``), ``program``
(the bounded BITOP program behind it), ``store`` (``SegmentStore``: Redis storage, atomic saves,
reference checks).

>>> from bitcore.segments import parse_expression, format_expression
>>> format_expression(parse_expression("active and not unique(banned)"))
'active & ~unique(banned)'
"""

from bitcore.segments.errors import (
    InvalidSegmentName,
    SegmentConflict,
    SegmentCycle,
    SegmentError,
    SegmentExists,
    SegmentInUse,
    SegmentNotFound,
    SegmentTooCostly,
    SegmentTooLarge,
    UnknownSegments,
)
from bitcore.segments.evaluate import (
    DEFAULT_MAX_BYTES,
    MAX_LEAVES,
    MAX_REFERENCE_DEPTH,
    SegmentBitmap,
    check_expansion,
    evaluate,
)
from bitcore.segments.parser import (
    MAX_DEPTH,
    MAX_LENGTH,
    SegmentSyntaxError,
    format_expression,
    parse_expression,
    references,
)
from bitcore.segments.store import MAX_NAME_LENGTH, Segment, SegmentStore, check_segment_name

__all__ = [
    "DEFAULT_MAX_BYTES", "SegmentBitmap", "SegmentTooCostly",
    "MAX_DEPTH", "MAX_LEAVES", "MAX_LENGTH", "MAX_NAME_LENGTH", "MAX_REFERENCE_DEPTH",
    "InvalidSegmentName", "Segment", "SegmentConflict", "SegmentCycle", "SegmentError",
    "SegmentExists",
    "SegmentInUse", "SegmentNotFound", "SegmentStore", "SegmentSyntaxError", "SegmentTooLarge",
    "UnknownSegments", "check_expansion", "check_segment_name", "evaluate", "format_expression",
    "parse_expression", "references",
]  # fmt: skip
