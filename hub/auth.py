"""Authentication: HS256 JWTs (PyJWT) from the subprotocol, an auth frame or the query; anonymous guests."""

from __future__ import annotations

import secrets
import time
from urllib.parse import parse_qs

import jwt

from hub.protocol import SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX
from hub.types import Identity

ALGORITHM = "HS256"

_ADJECTIVES = ("Amber", "Brave", "Calm", "Swift", "Quiet", "Bright", "Clever", "Gentle", "Lucky", "Merry")
_ANIMALS = ("Otter", "Falcon", "Badger", "Heron", "Lynx", "Panda", "Koala", "Robin", "Fox", "Orca")


class AuthError(Exception):
    """The token is missing, forged, expired or malformed; the connection closes with 4001."""


class Authenticator:
    def __init__(self, secret: str, *, leeway: float = 0.0) -> None:
        # RFC 7518 3.2: an HS256 key must be at least 256 bits (PyJWT warns on shorter ones).
        if len(secret.encode()) < 32:
            raise ValueError("the JWT secret must be at least 32 bytes long")
        self._secret = secret
        self._leeway = leeway

    def issue(self, user: str, *, name: str | None = None, ttl: float = 3600.0, scopes: tuple[str, ...] = ()) -> str:
        now = int(time.time())
        claims: dict[str, object] = {"sub": user, "name": name or user, "iat": now, "exp": now + int(ttl)}
        if scopes:
            claims["scope"] = " ".join(scopes)
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def issue_guest(self, identity: Identity, *, ttl: float) -> str:
        """A resume token for a guest: presented on a reconnect, it brings back the same guest (user and name)
        instead of a new one. The ``guest`` claim marks it, so it never stands for a signed-in user."""
        now = int(time.time())
        claims = {"sub": identity.user, "name": identity.name, "guest": True, "iat": now, "exp": now + int(ttl)}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Identity:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                # PyJWT accepts a token without exp unless told otherwise.
                options={"require": ["exp", "sub"]},
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("Token expired.") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"Invalid token: {exc}.") from None
        user = claims["sub"]
        if not isinstance(user, str) or not user or len(user) > 128:
            raise AuthError("Invalid token: 'sub' must be a non-empty string of at most 128 characters.")
        name = claims.get("name")
        if claims.get("guest") is True:  # a guest's resume token: no scopes, and guests never expire
            return Identity(user=user, name=name[:64] if isinstance(name, str) and name else user, anonymous=True)
        scope = claims.get("scope", "")
        return Identity(
            user=user,
            name=name[:64] if isinstance(name, str) and name else user,
            scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
            expires_at=float(claims["exp"]),
        )


def anonymous_identity() -> Identity:
    """A guest with a generated, readable name; guests are marked so policies can refuse them.

    The id carries 96 random bits (24 hex digits): authorship is the user id, so two guests sharing one could
    edit each other's messages. 24 bits collided after a few thousand guests; 96 bits make a collision among a
    billion guests about 6e-12 likely."""
    suffix = secrets.token_hex(12)
    name = f"{secrets.choice(_ADJECTIVES)} {secrets.choice(_ANIMALS)}"
    return Identity(user=f"guest-{suffix}", name=name, anonymous=True)


def token_from_handshake(subprotocols: list[str], query_string: bytes) -> tuple[str | None, str | None]:
    """Return (token, subprotocol to accept). The subprotocol echoed back is never the token itself."""
    token: str | None = None
    for offered in subprotocols:
        if offered.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            token = offered[len(TOKEN_SUBPROTOCOL_PREFIX) :]
    accept = SUBPROTOCOL if SUBPROTOCOL in subprotocols else None
    if token is None and query_string:
        values = parse_qs(query_string.decode("latin-1")).get("token")
        if values:
            token = values[0]
    return token, accept


def origin_allowed(headers: dict[bytes, bytes], allowed: list[str]) -> bool:
    """Refuse sockets opened by pages of other sites (cross-site WebSocket hijacking).

    A request without Origin is not from a browser page and is let through (it cannot carry a victim's
    cookies); a browser's Origin must be the hub's own (same host and port) or on the allow-list.
    """
    origin = headers.get(b"origin")
    if origin is None:
        return True
    value = origin.decode("latin-1").rstrip("/").lower()
    if "*" in allowed or value in (entry.rstrip("/").lower() for entry in allowed):
        return True
    host = headers.get(b"host", b"").decode("latin-1").lower()
    _scheme, sep, origin_host = value.partition("://")
    return bool(sep) and bool(host) and origin_host == host
