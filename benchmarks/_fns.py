"""The trivial bodies every implementation runs, so that each measures the same work."""

from __future__ import annotations

from collections.abc import Iterable

#: Children per parent in the ``nested`` workload.
FANOUT = 10


def inc(x: int) -> int:
    return x + 1


async def ainc(x: int) -> int:
    return x + 1


def source() -> int:
    return 1


async def asource() -> int:
    return 1


def middle(a: int, x: int) -> int:
    return a + x


async def amiddle(a: int, x: int) -> int:
    return a + x


def sink(values: Iterable[int]) -> int:
    return sum(values)


async def asink(values: Iterable[int]) -> int:
    return sum(values)


def chunks(n: int, size: int = FANOUT) -> list[range]:
    """``range(n)`` cut into consecutive ranges of ``size`` (the last may be shorter)."""
    return [range(start, min(start + size, n)) for start in range(0, n, size)]


def inputs(n: int) -> list[int]:
    return list(range(n))


def incremented(n: int) -> list[int]:
    """The result of every per-item workload: ``[x + 1 for x in range(n)]``."""
    return list(range(1, n + 1))


def nested_total(n: int) -> int:
    return n * (n + 1) // 2


def fan_total(n: int) -> int:
    # sink(middle(source(), x) for x in range(n)) with source() == 1
    return n + n * (n - 1) // 2
