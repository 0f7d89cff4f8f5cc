"""Print, as JSON, what the peer servers run on: Python, the pinned packages, and uvicorn's loop and protocols.

    benchmarks/peers/.venv/bin/python benchmarks/peers/versions.py

For the benchmarks' output, which states the package versions and that every server runs the same event
loop and WebSocket implementation.
"""

from __future__ import annotations

import json
import platform
from importlib.metadata import version

from serving import UVICORN_OPTIONS

PACKAGES = [
    "python-engineio",
    "channels",
    "channels-redis",
    "django",
    "fastapi",
    "python-socketio",
    "uvicorn",
    "websockets",
    "h11",
    "uvloop",
    "httptools",
]


def describe() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "packages": {name: version(name) for name in PACKAGES},
        "uvicorn": {key: UVICORN_OPTIONS[key] for key in ("loop", "http", "ws", "ws_per_message_deflate")},
        "ws_server": f"websockets.asyncio.server.serve on the {UVICORN_OPTIONS['loop']} loop, compression=None",
    }


if __name__ == "__main__":
    print(json.dumps(describe(), indent=2))
