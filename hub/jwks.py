"""An identity provider's signing keys from its JWKS URL: fetched when the hub starts, refreshed in the background,
cached by key id (``kid``).

Never fetched on the event loop (PyJWT's PyJWKClient would block it with urllib): the download runs in a
worker thread, bounded in time and size. A token signed with a key the cache does not know asks for a refresh,
at most once per ``min_refresh_interval``, so forged key ids cannot make the hub hammer the provider. When a
fetch fails the keys of the last good one stay in use; when none ever succeeded, tokens that need them fail
(4001) with a reason saying so, and the hub runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt
import orjson

log = logging.getLogger("hub.jwks")

_CHUNK = 64 * 1024
_STRING_MEMBERS = ("kty", "use", "alg", "kid", "crv", "n", "e", "x", "y", "d")


class JwksError(Exception):
    """The JWKS could not be fetched or holds no usable signing key."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key of a JWK Set: its ``kid``, the key (a ``cryptography`` public key object) and the algorithm the
    set names for it (``alg``), if any."""

    kid: str | None
    key: object
    algorithm: str | None


class JwksCache:
    """The signing keys of one JWKS URL, by ``kid``. ``start`` and ``stop`` run on the hub's event loop; ``key``
    and ``request_refresh`` may be called from any thread (a plugin's sync HTTP route runs in a worker thread)."""

    def __init__(
        self,
        url: str,
        *,
        refresh_interval: float = 300.0,
        min_refresh_interval: float = 30.0,
        timeout: float = 5.0,
        max_bytes: int = 256 * 1024,
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"HUB_JWKS_URL must be an http:// or https:// URL, not {url!r}")
        self.url = url
        self.refresh_interval = refresh_interval
        self.min_refresh_interval = min_refresh_interval
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._by_kid: dict[str, SigningKey] = {}
        self._keys: tuple[SigningKey, ...] = ()
        self.fetched: bool = False  # a fetch has succeeded at least once
        self.fetches = 0  # attempts, successful or not
        self.last_error: str | None = None
        self._last_attempt = -float("inf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None

    # ---- lookups (any thread) ----------------------------------------------------------------------------

    def key(self, kid: str | None) -> SigningKey | None:
        """The key named ``kid``; without a kid, the only key when the set holds exactly one."""
        if kid is not None:
            return self._by_kid.get(kid)
        keys = self._keys
        return keys[0] if len(keys) == 1 else None

    @property
    def size(self) -> int:
        return len(self._keys)

    def request_refresh(self) -> None:
        """Ask for a refresh without waiting for it (rate-limited; ignored before ``start`` or after ``stop``)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._maybe_refresh)

    # ---- refreshing (the event loop) ---------------------------------------------------------------------

    async def start(self) -> None:
        """Fetch once (a failure is logged, not raised: the hub starts anyway) and keep refreshing."""
        self._loop = asyncio.get_running_loop()
        await self.refresh()
        self._refresher = asyncio.create_task(self._refresh_forever(), name="hub-jwks-refresh")

    async def stop(self) -> None:
        self._loop = None
        for task in (self._refresher, self._inflight):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._refresher = self._inflight = None

    async def refresh(self) -> None:
        """Fetch now (joining a fetch already under way)."""
        task = self._inflight
        if task is None or task.done():
            task = self._inflight = asyncio.create_task(self._fetch(), name="hub-jwks-fetch")
        await asyncio.shield(task)

    async def refresh_for_unknown_key(self) -> bool:
        """A token named a key we do not have: refresh unless one ran less than ``min_refresh_interval`` ago
        (joining one under way). True when a fetch ran, so looking the key up again may find it."""
        task = self._maybe_refresh()
        if task is None:
            return False
        await asyncio.shield(task)
        return True

    def _maybe_refresh(self) -> asyncio.Task[None] | None:
        if self._inflight is not None and not self._inflight.done():
            return self._inflight
        if self._loop is None or time.monotonic() - self._last_attempt < self.min_refresh_interval:
            return None
        self._inflight = asyncio.create_task(self._fetch(), name="hub-jwks-fetch")
        return self._inflight

    async def _refresh_forever(self) -> None:
        while True:
            # After a failure, try again sooner than the regular interval (but never in a tight loop).
            retry = min(self.refresh_interval, max(self.min_refresh_interval, 1.0))
            await asyncio.sleep(self.refresh_interval if self.last_error is None else retry)
            try:
                await self.refresh()
            except Exception:  # a bug in a fetch must not end the refreshing (task boundary)
                log.exception("refreshing the JWKS at %s failed", self.url)

    async def _fetch(self) -> None:
        self._last_attempt = time.monotonic()
        self.fetches += 1
        try:
            raw = await asyncio.to_thread(download, self.url, self.timeout, self.max_bytes)
            keys = parse_jwks(raw)
        except JwksError as exc:
            self.last_error = str(exc)
            kept = f"; keeping the {len(self._keys)} key(s) fetched before" if self.fetched else ""
            log.warning("could not fetch the JWKS at %s: %s%s", self.url, exc, kept)
            return
        self._by_kid = {key.kid: key for key in keys if key.kid is not None}
        self._keys = keys
        self.fetched = True
        self.last_error = None
        log.info("fetched %d signing key(s) from %s", len(keys), self.url)


def download(url: str, timeout: float, max_bytes: int) -> bytes:
    """GET ``url`` (blocking: call it in a thread). At most ``max_bytes``, within about ``timeout`` seconds,
    following redirects over http(s) only."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.HTTPHandler,
        urllib.request.HTTPSHandler,
        urllib.request.HTTPDefaultErrorHandler,
        urllib.request.HTTPRedirectHandler,
        urllib.request.HTTPErrorProcessor,
    ):
        opener.add_handler(handler())
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "hub-jwks"})
    deadline = time.monotonic() + timeout
    try:
        with opener.open(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise JwksError(f"the response has {declared} bytes, more than jwks_max_bytes ({max_bytes})")
            body = bytearray()
            while chunk := response.read1(_CHUNK):
                body += chunk
                if len(body) > max_bytes:
                    raise JwksError(f"the response is longer than jwks_max_bytes ({max_bytes})")
                if time.monotonic() > deadline:
                    raise JwksError(f"the response took longer than jwks_timeout ({timeout} s)")
            return bytes(body)
    except urllib.error.HTTPError as exc:
        raise JwksError(f"HTTP {exc.code}") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:  # URLError and timeouts are OSErrors
        raise JwksError(str(exc) or type(exc).__name__) from None


def parse_jwks(raw: bytes) -> tuple[SigningKey, ...]:
    """The public signing keys of a JWK Set. Keys for encryption (``use: enc``), symmetric (``oct``) keys and
    keys PyJWT cannot use are skipped; a set with none left is an error."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise JwksError(f"the response is not JSON: {exc}") from None
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise JwksError("the response is not a JWK Set (an object with a 'keys' list)")
    keys: list[SigningKey] = []
    for entry in entries:
        # Every member PyJWT reads is a string in a valid JWK; an entry with anything else is skipped unread.
        if not isinstance(entry, dict) or any(not isinstance(entry[n], str) for n in _STRING_MEMBERS if n in entry):
            continue
        if entry.get("use", "sig") != "sig" or entry.get("kty") == "oct":
            continue
        try:
            key = jwt.PyJWK(entry).key
        except (jwt.PyJWTError, ValueError) as exc:
            log.debug("skipped a JWK (kid %r): %s", entry.get("kid"), exc)
            continue
        keys.append(SigningKey(entry.get("kid"), key, entry.get("alg")))
    if not keys:
        raise JwksError("the JWK Set holds no usable signing key")
    return tuple(keys)
