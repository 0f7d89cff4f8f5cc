"""Authentication: JWTs (PyJWT) from the subprotocol, an auth frame or the query; anonymous guests.

Tokens are HS256 with the hub's secret (``hub token``, guests' resume tokens) and, when configured, RS256,
ES256 and the other public-key algorithms with an identity provider's key (a PEM, or a JWKS URL). The key
always follows from the algorithm: HMAC algorithms verify with the hub's secret and nothing else, public-key
algorithms with a public key of the matching type and nothing else, so a token cannot pick its own key
(the "algorithm confusion" attack: HS256 signed with a published public key). ``alg: none`` is never accepted.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from hub.guest_names import guest_name
from hub.jwks import JwksCache
from hub.protocol import SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX
from hub.types import Identity

if TYPE_CHECKING:
    from hub.settings import HubSettings

ALGORITHM = "HS256"  # the hub's own tokens: `hub token` and guests' resume tokens
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
_EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
PUBLIC_KEY_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA", *_EC_CURVES})
ALGORITHMS = HMAC_ALGORITHMS | PUBLIC_KEY_ALGORITHMS

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey


class AuthError(Exception):
    """The token is missing, forged, expired or malformed; the connection closes with 4001."""


class _UnknownKey(AuthError):
    """The token names a key the JWKS cache does not hold (yet): a refresh may find it."""


def key_fits(algorithm: str, key: object) -> bool:
    """Whether ``key`` is a public key of the type ``algorithm`` verifies with (and, for ECDSA, its curve)."""
    if algorithm.startswith(("RS", "PS")):
        return isinstance(key, rsa.RSAPublicKey)
    if algorithm in _EC_CURVES:
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == _EC_CURVES[algorithm]
    if algorithm == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    return False


def load_public_key(value: str) -> PublicKey:
    """A public key from PEM text, or from the path of a PEM file (a public key or an X.509 certificate)."""
    text = value.strip()
    if not text.startswith("-----BEGIN"):
        try:
            text = Path(text).expanduser().read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"HUB_JWT_PUBLIC_KEY is neither PEM text nor a readable PEM file: {exc}") from None
    data = text.strip().encode()
    try:
        key: object = (
            x509.load_pem_x509_certificate(data).public_key()
            if data.startswith(b"-----BEGIN CERTIFICATE")
            else serialization.load_pem_public_key(data)
        )
    except ValueError as exc:
        raise ValueError(f"HUB_JWT_PUBLIC_KEY is not a PEM public key or certificate: {exc}") from None
    if not isinstance(key, PublicKey):
        raise ValueError(f"HUB_JWT_PUBLIC_KEY holds a {type(key).__name__}; use an RSA, EC or Ed25519/Ed448 key")
    return key


class Authenticator:
    """Verifies tokens (``verify``, or ``verify_async`` on the event loop, which can wait for a JWKS refresh)
    and issues the hub's own HS256 tokens. Built from the settings by :meth:`from_settings`."""

    def __init__(
        self,
        secret: str,
        *,
        leeway: float = 0.0,
        algorithms: Iterable[str] = (ALGORITHM,),
        public_key: PublicKey | None = None,
        jwks: JwksCache | None = None,
        audience: Iterable[str] = (),
        issuer: str | None = None,
    ) -> None:
        # RFC 7518 3.2: an HS256 key must be at least 256 bits (PyJWT warns on shorter ones).
        if len(secret.encode()) < 32:
            raise ValueError("the JWT secret must be at least 32 bytes long")
        self._secret = secret
        self._leeway = leeway
        self.algorithms = frozenset(algorithms)
        unknown = sorted(self.algorithms - ALGORITHMS)
        if unknown:
            raise ValueError(
                f"HUB_JWT_ALGORITHMS: {', '.join(map(repr, unknown))} is not accepted; use some of "
                f"{', '.join(sorted(ALGORITHMS))}"
            )
        for algorithm in self.algorithms & HMAC_ALGORITHMS:  # RFC 7518 3.2: a key as long as the hash
            needed = int(algorithm[2:]) // 8
            if len(secret.encode()) < needed:
                raise ValueError(f"HUB_JWT_ALGORITHMS lists {algorithm}: the secret must be at least {needed} bytes")
        asymmetric = self.algorithms & PUBLIC_KEY_ALGORITHMS
        if asymmetric and public_key is None and jwks is None:
            raise ValueError(
                f"HUB_JWT_ALGORITHMS lists {', '.join(sorted(asymmetric))}: set HUB_JWT_PUBLIC_KEY or HUB_JWKS_URL"
            )
        if (public_key is not None or jwks is not None) and not asymmetric:
            raise ValueError(
                "HUB_JWT_PUBLIC_KEY or HUB_JWKS_URL is set, but HUB_JWT_ALGORITHMS lists no public-key "
                "algorithm (add RS256, ES256, ...)"
            )
        if public_key is not None and not any(key_fits(alg, public_key) for alg in asymmetric):
            raise ValueError(
                f"HUB_JWT_PUBLIC_KEY is a {type(public_key).__name__}, which verifies none of "
                f"{', '.join(sorted(asymmetric))}"
            )
        self._public_key = public_key
        self.jwks = jwks
        self._audience = tuple(dict.fromkeys(audience))  # in order: the hub's own tokens carry the first
        self._issuer = issuer

    @classmethod
    def from_settings(cls, settings: HubSettings) -> Authenticator:
        jwks = None
        if settings.jwks_url:
            jwks = JwksCache(
                settings.jwks_url,
                refresh_interval=settings.jwks_refresh_interval,
                min_refresh_interval=settings.jwks_min_refresh_interval,
                timeout=settings.jwks_timeout,
                max_bytes=settings.jwks_max_bytes,
            )
        return cls(
            settings.resolved_secret(),
            leeway=settings.token_leeway,
            algorithms=settings.jwt_algorithms,
            public_key=load_public_key(settings.jwt_public_key) if settings.jwt_public_key else None,
            jwks=jwks,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
        )

    async def start(self) -> None:
        """Fetch the JWKS (if one is configured) and keep it fresh; a failed fetch does not stop the hub."""
        if self.jwks is not None:
            await self.jwks.start()

    async def stop(self) -> None:
        if self.jwks is not None:
            await self.jwks.stop()

    # ---- issuing the hub's own tokens --------------------------------------------------------------------

    def _claims(self, user: str, name: str, ttl: float) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {"sub": user, "name": name, "iat": now, "exp": now + int(ttl)}
        if self._audience:
            claims["aud"] = self._audience[0]
        if self._issuer:
            claims["iss"] = self._issuer
        return claims

    def issue(self, user: str, *, name: str | None = None, ttl: float = 3600.0, scopes: tuple[str, ...] = ()) -> str:
        claims = self._claims(user, name or user, ttl)
        if scopes:
            claims["scope"] = " ".join(scopes)
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def issue_guest(self, identity: Identity, *, ttl: float) -> str:
        """A resume token for a guest: presented on a reconnect, it brings back the same guest (user and name)
        instead of a new one. The ``guest`` claim marks it, so it never stands for a signed-in user."""
        claims = {**self._claims(identity.user, identity.name, ttl), "guest": True}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    # ---- verifying ---------------------------------------------------------------------------------------

    def verify(self, token: str) -> Identity:
        """The identity a token stands for, or AuthError. A token signed with a key the JWKS cache does not hold
        is refused, and a background refresh is asked for (so a retry may succeed)."""
        try:
            return self._verify(token)
        except _UnknownKey:
            if self.jwks is not None:
                self.jwks.request_refresh()
            raise

    async def verify_async(self, token: str) -> Identity:
        """As :meth:`verify`, on the event loop: a token naming a key the cache does not hold waits for a
        refresh (at most one per ``jwks_min_refresh_interval``, shared by every waiter) and is checked again."""
        try:
            return self._verify(token)
        except _UnknownKey:
            if self.jwks is None or not await self.jwks.refresh_for_unknown_key():
                raise
        return self._verify(token)

    def _verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(f"Invalid token: {exc}.") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
            raise AuthError(f"Invalid token: the algorithm {str(algorithm)[:16]!r} is not accepted.")
        hmac = algorithm in HMAC_ALGORITHMS
        # HS256 may be a guest's resume token, accepted whatever the setting says; the decoded claims tell.
        if algorithm not in self.algorithms and algorithm != ALGORITHM:
            raise AuthError(f"Invalid token: {algorithm} tokens are not accepted here.")
        key: str | PublicKey = self._secret if hmac else self._public_key_for(algorithm, header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],  # exactly the one the key was chosen for
                # PyJWT accepts a token without exp unless told otherwise; aud and iss are checked below.
                options={"require": ["exp", "sub"], "verify_aud": False, "verify_iss": False},
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("Token expired.") from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"Invalid token: {exc}.") from None
        user = claims["sub"]
        if not isinstance(user, str) or not user or len(user) > 128:
            raise AuthError("Invalid token: 'sub' must be a non-empty string of at most 128 characters.")
        name = claims.get("name")
        name = name[:64] if isinstance(name, str) and name else user
        # A guest's resume token: the hub's own (HS256, its secret); no scopes, and guests never expire.
        if hmac and algorithm == ALGORITHM and claims.get("guest") is True:
            return Identity(user=user, name=name, anonymous=True)
        if algorithm not in self.algorithms:
            raise AuthError(f"Invalid token: {algorithm} tokens are not accepted here.")
        self._check_audience_and_issuer(claims)
        scope = claims.get("scope", "")
        return Identity(
            user=user,
            name=name,
            scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
            expires_at=float(claims["exp"]),
        )

    def _public_key_for(self, algorithm: str, kid: object) -> PublicKey:
        if kid is not None and not isinstance(kid, str):
            raise AuthError("Invalid token: 'kid' must be a string.")
        key: object
        jwks = self.jwks
        if jwks is not None and (kid is not None or self._public_key is None):
            found = jwks.key(kid)
            if found is None:
                if not jwks.fetched:
                    raise _UnknownKey(
                        "Invalid token: the hub could not fetch its identity provider's keys (HUB_JWKS_URL); "
                        "retry later."
                    )
                if kid is None:
                    raise AuthError("Invalid token: it names no key ('kid') and the JWKS holds several.")
                raise _UnknownKey(f"Invalid token: unknown signing key {kid[:40]!r}.")
            if found.algorithm is not None and found.algorithm != algorithm:
                raise AuthError(
                    f"Invalid token: the key {str(kid)[:40]!r} is for {found.algorithm[:16]}, not {algorithm}."
                )
            key = found.key
        elif self._public_key is not None:
            key = self._public_key
        else:
            raise AuthError(f"Invalid token: {algorithm} tokens are not accepted here.")
        if not key_fits(algorithm, key) or not isinstance(key, PublicKey):
            raise AuthError(f"Invalid token: an {algorithm} token does not match the key's type.")
        return key

    def _check_audience_and_issuer(self, claims: dict[str, Any]) -> None:
        if self._audience:
            aud = claims.get("aud")
            values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
            if not values:
                raise AuthError("Invalid token: it has no audience ('aud'), which this hub requires.")
            if not any(isinstance(value, str) and value in self._audience for value in values):
                raise AuthError("Invalid token: wrong audience ('aud'); the token is not meant for this hub.")
        if self._issuer:
            iss = claims.get("iss")
            if iss is None:
                raise AuthError("Invalid token: it has no issuer ('iss'), which this hub requires.")
            if iss != self._issuer:
                raise AuthError("Invalid token: wrong issuer ('iss'); the token is not from this hub's provider.")


def anonymous_identity() -> Identity:
    """A guest with a generated, readable name; guests are marked so policies can refuse them.

    The id carries 96 random bits (24 hex digits): authorship is the user id, so two guests sharing one could
    edit each other's messages. 24 bits collided after a few thousand guests; 96 bits make a collision among a
    billion guests about 6e-12 likely. The name is one of 900,000 (:mod:`hub.guest_names`)."""
    suffix = secrets.token_hex(12)
    return Identity(user=f"guest-{suffix}", name=guest_name(), anonymous=True)


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
