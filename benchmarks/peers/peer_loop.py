"""PEER_LOOP: the event loop every peer runs on, ``asyncio`` (default) or ``uvloop`` (benchmarks/compare.py
--loop uvloop), as HUB_LOOP does for the hub. Standard library only, so the ``ws`` peer imports no uvicorn."""

from __future__ import annotations

import importlib.util
import os

LOOPS = ("asyncio", "uvloop")


def peer_loop() -> str:
    """The event loop named by PEER_LOOP (default asyncio); exits with a clear message if it is not usable."""
    loop = os.environ.get("PEER_LOOP", "asyncio") or "asyncio"
    if loop not in LOOPS:
        raise SystemExit(f"PEER_LOOP={loop!r}: choose from {', '.join(LOOPS)}")
    if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise SystemExit("PEER_LOOP=uvloop but uvloop is not installed in this environment; run benchmarks/peers/setup")
    return loop
