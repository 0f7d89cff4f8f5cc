"""How a presence room tells apart users who share a name: the first shows as the name, each later one as the
name with the first free suffix, ``"Alice (2)"``, ``"Alice (3)"`` (protocol.md §9, "Names").

Every backend gives displays this way (RedisPresence in a script, the same rule as :func:`display_name`), so the
rooms of every backend look alike.
"""

from __future__ import annotations

from collections.abc import Callable


def display_name(name: str, taken: Callable[[str], bool]) -> str:
    """``name``, or ``name (n)`` for the smallest n >= 2 that ``taken`` says is free."""
    display = name
    suffix = 1
    while taken(display):
        suffix += 1
        display = f"{name} ({suffix})"
    return display
