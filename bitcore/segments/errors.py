"""What can go wrong with a segment: ``ValueError`` subclasses a form can show as they are."""

from __future__ import annotations

from collections.abc import Iterable

from bitcore.limits import TooCostly


class SegmentError(ValueError):
    """Base of every segment error; the message is written for the person who typed the segment."""


class InvalidSegmentName(SegmentError):
    pass


class SegmentNotFound(SegmentError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no segment named {name!r}")


class SegmentExists(SegmentError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a segment named {name!r} already exists")


class UnknownSegments(SegmentError):
    """The expression refers to segments that are not saved."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = sorted(names)
        listed = ", ".join(repr(n) for n in self.names)
        super().__init__(f"unknown segment{'s' if len(self.names) > 1 else ''}: {listed}")


class SegmentInUse(SegmentError):
    """A segment other segments refer to cannot be deleted or renamed; ``users`` says which ones."""

    def __init__(self, name: str, users: Iterable[str], action: str = "delete") -> None:
        self.name = name
        self.users = sorted(users)
        listed = ", ".join(repr(n) for n in self.users)
        super().__init__(
            f"cannot {action} segment {name!r}: it is used by {listed}; change those segments first"
        )


class SegmentCycle(SegmentError):
    def __init__(self, path: list[str]) -> None:
        self.path = path
        super().__init__(f"segment references form a cycle: {' -> '.join(path)}")


class SegmentTooLarge(SegmentError):
    """The expression, with the segments it refers to expanded, is over a limit."""


class SegmentConflict(SegmentError):
    """Segments kept changing under a save or delete; nothing was written."""


class SegmentTooCostly(SegmentTooLarge, TooCostly):
    """Computing the expression would take more scratch memory in Redis than allowed.

    ``needed`` and ``limit`` are bytes; the message names both, so a caller can add the setting
    that raises the limit (the dashboard's is ``BITCORE_SEGMENT_MAX_BYTES``).
    """

    def __init__(self, needed: int, limit: int) -> None:
        TooCostly.__init__(
            self,
            needed,
            limit,
            f"computing this expression needs about {_mib(needed)} of scratch memory in Redis, "
            f"over the limit of {_mib(limit)}",
        )


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"
