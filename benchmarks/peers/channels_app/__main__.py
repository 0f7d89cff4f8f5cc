"""Serve the Channels peer under uvicorn: `python -m channels_app --port P` from benchmarks/peers.

Uses the in-memory channel layer, or channels_redis when CHANNELS_REDIS_URL is set.
"""

from __future__ import annotations

from serving import serve

from channels_app.asgi import application

serve(application, "Django Channels peer (plain protocol on /ws) under uvicorn")
