"""Django settings of the Channels peer: no database, no HTTP views, one channel layer picked by environment."""

from __future__ import annotations

import os

SECRET_KEY = "benchmark-peer-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["channels"]
DATABASES: dict[str, dict[str, str]] = {}
ROOT_URLCONF = "channels_app.urls"
ASGI_APPLICATION = "channels_app.asgi.application"
USE_TZ = True

# The in-memory layer (one process) by default; with CHANNELS_REDIS_URL set, channels_redis's
# RedisChannelLayer, so several processes share groups (workload W5). Both keep their default capacity
# and expiry: a benchmark measures what a user of Channels gets out of the box.
REDIS_URL = os.environ.get("CHANNELS_REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
