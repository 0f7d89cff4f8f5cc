"""Record ids for plugins: sortable by time, unique in practice, cheap to make."""

from __future__ import annotations

import random
import time

_last_ms = 0
# Ids must not collide, but need not be secret: a PRNG seeded from os.urandom once, rather than
# secrets.token_hex, which is an os.urandom system call for every id.
_random = random.Random()


def sortable_id(now: float | None = None) -> str:
    """12 hex digits of milliseconds (strictly increasing in this process, from ``now`` or the clock), a dash,
    8 random hex digits: ``018f2c1a9b3e-5d0c77a1``. Store keys made of them list in creation order."""
    global _last_ms
    _last_ms = max(int((time.time() if now is None else now) * 1000), _last_ms + 1)
    return f"{_last_ms:012x}-{_random.getrandbits(32):08x}"
