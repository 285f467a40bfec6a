"""``unmapped``: pass a whole iterable to every mapped run instead of mapping over it.

Seed snippet: static arguments to ``map``.
"""

from actorflow import flow, task, unmapped


@task
def sum_plus(x, static_iterable):
    return x + sum(static_iterable)


@flow
def sum_it(numbers, static_iterable):
    futures = sum_plus.map(numbers, unmapped(static_iterable))
    return futures.result()


def main() -> list[int]:
    """Run the flow; its result, ``[10, 11, 12]``."""
    resulting_sum = sum_it([4, 5, 6], [1, 2, 3])
    assert resulting_sum == [10, 11, 12]
    return resulting_sum


if __name__ == "__main__":
    print(main())
