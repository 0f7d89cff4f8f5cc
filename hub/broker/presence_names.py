"""How a presence room tells apart users who share a name: the first shows as the name, each later one as the
name with the first free suffix, ``"Alice (2)"``, ``"Alice (3)"`` (protocol.md §9, "Names").

Every backend gives displays this way (RedisPresence in a script, the same rule as :func:`display_name`), so the
rooms of every backend look alike.

The search for a free suffix is bounded: past the first :data:`PROBES` suffixes it starts above the room's
member count, where a suffix is nearly always free. Without the bound, a big room where many users share a
name (an identity provider that calls everyone "Student") would cost each joiner a walk over all of them.
"""

from __future__ import annotations

from collections.abc import Callable

PROBES = 32
"""Suffixes tried in order (2 to PROBES + 1) before the search jumps above the room's size."""


def display_name(name: str, taken: Callable[[str], bool], members: int) -> str:
    """``name``, or ``name (n)`` for the smallest n >= 2 that ``taken`` says is free among the first
    :data:`PROBES`, else for the smallest free n above ``members`` (the room's member count)."""
    if not taken(name):
        return name
    for suffix in range(2, PROBES + 2):
        display = f"{name} ({suffix})"
        if not taken(display):
            return display
    suffix = max(members + 1, PROBES + 2)
    while taken(display := f"{name} ({suffix})"):
        suffix += 1
    return display
