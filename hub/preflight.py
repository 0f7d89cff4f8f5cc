"""The checks ``hub serve`` makes before anything starts, each failure one sentence: settings that cannot work
together, the token settings, the store's files, and Redis answering at the URLs the broker and store use."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

from hub.config import mask_url
from hub.settings import HubSettings
from hub.settings_file import Origin


@dataclass(frozen=True)
class Problem:
    """Why the hub cannot start. ``kind``: ``usage`` (the settings; exit 2) or ``runtime`` (the world; exit 1)."""

    message: str
    kind: Literal["usage", "runtime"]

    @property
    def exit_code(self) -> int:
        return 2 if self.kind == "usage" else 1


def origin_text(origins: Mapping[str, tuple[Origin, str]], name: str) -> str:
    """Where a setting's value came from, for a message: ``--redis``, ``HUB_REDIS_URL``, ``hub.toml:3``, ``default``."""
    kind, where = origins.get(name, ("default", ""))
    return where or kind


def settings_problem(settings: HubSettings, workers: int, *, make_secret: bool = True) -> Problem | None:
    """Settings that validate one by one but cannot run together, or token settings that cannot be used.
    ``make_secret``: whether a missing generated secret may be made now (``hub serve``), or its absence
    assumed fine (``hub config --check``)."""
    if workers > 1 and settings.resolved_broker_url().startswith("memory:"):
        return Problem("--workers > 1 needs a shared broker: add --redis redis://host:port/db", "usage")
    if settings.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        return Problem("HUB_LOOP=uvloop needs the uvloop package: pip install uvloop", "usage")
    from hub.auth import Authenticator

    checked = settings
    if not settings.secret and not make_secret and not (settings.data_dir / "secret").is_file():
        checked = settings.model_copy(update={"secret": "a secret made at the first start-up, 32 bytes long"})
    try:
        Authenticator.from_settings(checked)  # the token settings (algorithms, keys, JWKS URL) before anything runs
    except ValueError as exc:
        return Problem(f"the token settings are not usable: {exc}", "usage")
    except OSError as exc:
        where = settings.data_dir / "secret"
        return Problem(f"cannot make or read the secret {where}: {exc.strerror or exc}", "runtime")
    return None


def store_problem(settings: HubSettings) -> Problem | None:
    """The SQLite store's files, checked (and the database opened once); a Redis store is not contacted here."""
    from hub.store import check_before_start

    problem = check_before_start(settings.resolved_store_url())
    return Problem(f"the store cannot be used: {problem}", "runtime") if problem else None


def redis_problem(settings: HubSettings, origins: Mapping[str, tuple[Origin, str]]) -> Problem | None:
    """Whether Redis answers a PING at the store's URL and the broker's (when they are Redis), within
    ``probe_timeout``, and that a plain URL does not name a Cluster node. A broker alone may start while its
    Redis is down (it connects in the background, the node unready until then), so for it only an answer that
    is wrong (a Cluster node, a refused password) is a problem; the store needs Redis at start."""
    from hub.redis_client import SCHEMES

    targets: dict[str, tuple[list[str], str]] = {}  # url -> (what uses it, the setting that names it)
    for part, url, setting in (
        ("broker", settings.resolved_broker_url(), "broker_url" if settings.broker_url else "redis_url"),
        ("store", settings.resolved_store_url(), "store_url" if settings.store_url else "redis_url"),
    ):
        if urlparse(url).scheme in SCHEMES:
            targets.setdefault(url, ([], setting))[0].append(part)
    for url, (parts, setting) in targets.items():
        reason, unreachable = asyncio.run(_ping(url, settings.probe_timeout))
        if reason is not None and (not unreachable or "store" in parts):
            source = origin_text(origins, setting)
            advice = (
                "Check that Redis is running there and reachable from this machine, or fix the URL"
                if unreachable
                else "Fix the URL or the Redis it names"
            )
            return Problem(
                f"cannot {'reach' if unreachable else 'use'} Redis at {mask_url(url)} (the {' and the '.join(parts)}; "
                f"from {source}): {reason.rstrip('.')}. {advice}",
                "runtime",
            )
    return None


async def _ping(url: str, timeout: float) -> tuple[str | None, bool]:
    """(None if Redis answers at ``url`` as the hub needs, else why not in a few words; whether it was simply
    not reached: refused, timed out, or down)."""
    from redis.exceptions import AuthenticationError, ResponseError

    from hub.redis_client import REDIS_ERRORS, check_mode, connect

    try:
        client = connect(url, max_connections=2, timeout=timeout)
    except ValueError as exc:
        return f"the URL is not usable ({exc})", False
    try:
        async with asyncio.timeout(timeout + 1):
            await client.ping()
            await check_mode(client, url)
    except TimeoutError:
        return f"no answer within {timeout:g} s", True
    except RuntimeError as exc:  # check_mode: a plain URL naming a Cluster node
        return str(exc), False
    except (AuthenticationError, ResponseError) as exc:  # it answered: a refused password, a wrong database
        return " ".join(str(exc).split()) or type(exc).__name__, False
    except REDIS_ERRORS as exc:
        return " ".join(str(exc).split()) or type(exc).__name__, True
    except ValueError as exc:
        return f"the URL is not usable ({exc})", False
    finally:
        with contextlib.suppress(*REDIS_ERRORS):  # closing a client that never connected
            await client.aclose()
    return None, False
