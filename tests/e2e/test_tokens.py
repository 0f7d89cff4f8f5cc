"""Tokens from an identity provider on a real hub: RS256 and ES256 with a configured public key or from a JWKS
URL (served here by a real HTTP server on a free port), alongside the hub's own HS256 tokens; key rotation;
``aud``/``iss`` checks; algorithm confusion and ``alg: none`` refused; a JWKS that is down, slow or too big
neither stops nor blocks the hub; the HTTP routes (Hub.authenticate, Hub.authenticate_publisher) take the same
tokens."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import httpx
import jwt
import orjson
import pytest
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import APIRouter, Header
from hypothesis import given
from hypothesis import settings as fuzzing
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from typer.testing import CliRunner
from websockets.typing import Subprotocol

import hub_realtime_plugins.chat
from hub import Hub, hookimpl
from hub.auth import Authenticator
from hub.cli import cli
from hub.jwks import JwksError, parse_jwks
from hub.settings import HubSettings
from hub.testing import TEST_SECRET, HubClient, HubServer

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
LOBBY = "chat:lobby"


# ---- keys, tokens and a JWKS endpoint --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_keys() -> list[rsa.RSAPrivateKey]:
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem(key: PrivateKey) -> str:
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return public.decode()


def jwk(key: PrivateKey, kid: str, alg: str | None = None) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    data: dict[str, Any] = {**algorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"}
    if alg is not None:
        data["alg"] = alg
    return data


def token(key: PrivateKey | str, alg: str, *, kid: str | None = None, **claims: Any) -> str:
    values: dict[str, Any] = {"sub": "ada", "name": "Ada", "exp": int(time.time()) + 300, **claims}
    return jwt.encode(values, key, algorithm=alg, headers={"kid": kid} if kid else None)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_hs256(secret: bytes, **claims: Any) -> str:
    """HS256 signed with ``secret`` by hand (PyJWT itself refuses a PEM public key as an HMAC secret)."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"sub": "mallory", "exp": int(time.time()) + 300, **claims}).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 and a free port (http.server in a thread); keys, status, delay and body can
    be changed while it runs, and it counts the requests it got."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.status = 200
        self.delay = 0.0
        self.body: bytes | None = None  # sent instead of the key set when set
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                time.sleep(owner.delay)
                body = owner.body if owner.body is not None else orjson.dumps({"keys": owner.keys})
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(ConnectionError):  # the hub hung up on a body past jwks_max_bytes
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


def who_plugin() -> ModuleType:
    """HTTP routes authenticating like a plugin's would: Hub.authenticate and Hub.authenticate_publisher."""

    def routes(hub: Hub) -> APIRouter:
        router = APIRouter()

        @router.get("/api/whoami")
        async def whoami(authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
            identity = hub.authenticate(authorization)
            return {"user": identity.user, "name": identity.name, "anonymous": identity.anonymous}

        @router.post("/api/publish")
        async def publish(authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
            return {"user": hub.authenticate_publisher(authorization, None).user}

        return router

    module = ModuleType("who_plugin")
    module.hub_http_routes = hookimpl(routes)  # type: ignore[attr-defined]
    return module


def start(hub_server: Callable[..., HubServer], **settings: Any) -> HubServer:
    return hub_server(plugins={"chat": hub_realtime_plugins.chat.Chat, "who": who_plugin()}, **settings)


# ---- socket helpers --------------------------------------------------------------------------------------------


async def accepted(server: HubServer, jwt_token: str) -> dict[str, Any]:
    """The hello's user for a socket opened with ``jwt_token``; fails if the hub closes it."""
    client = await HubClient.connect(server.ws_url, token=jwt_token)
    try:
        return dict(client.hello["user"])
    finally:
        await client.close()


async def refused(server: HubServer, jwt_token: str) -> str:
    """The close reason of a socket opened with ``jwt_token``, which the hub must close with 4001."""
    offered = [Subprotocol("hub.v1"), Subprotocol("bearer." + jwt_token)]
    async with websockets.connect(server.ws_url, subprotocols=offered) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
    assert ws.close_code == 4001, (ws.close_code, ws.close_reason)
    assert len((ws.close_reason or "").encode()) <= 123
    return ws.close_reason or ""


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert record.exc_info is None, f"{record.name}: {record.getMessage()}"
        assert record.levelno < logging.ERROR, f"{record.name}: {record.getMessage()}"


async def eventually(predicate: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


# ---- a configured public key -----------------------------------------------------------------------------------


async def test_rs256_and_es256_tokens_with_a_configured_public_key_alongside_hs256(
    hub_server, rsa_keys, ec_key, tmp_path: Path
):
    rsa_hub = start(hub_server, jwt_algorithms=["HS256", "RS256"], jwt_public_key=pem(rsa_keys[0]))
    user = await accepted(rsa_hub, token(rsa_keys[0], "RS256"))
    assert user == {"user": "ada", "name": "Ada", "anonymous": False}
    assert (await accepted(rsa_hub, rsa_hub.token("bob")))["user"] == "bob"  # HS256 with the hub's secret
    assert "Signature verification failed" in await refused(rsa_hub, token(rsa_keys[1], "RS256"))  # another key
    assert await refused(rsa_hub, token(ec_key, "ES256")) == "Invalid token: ES256 tokens are not accepted here."

    key_file = tmp_path / "idp.pem"
    key_file.write_text(pem(ec_key))
    ec_hub = start(hub_server, jwt_algorithms=["ES256"], jwt_public_key=str(key_file))  # a path this time
    client = await HubClient.connect(ec_hub.ws_url)  # a guest, who then signs in with an auth frame
    reply = await client.call({"op": "auth", "token": token(ec_key, "ES256", sub="eve", name="Eve")})
    assert reply["user"] == {"user": "eve", "name": "Eve", "anonymous": False}
    await client.sub(LOBBY)
    posted = await client.pub(LOBBY, "chat.send", {"text": "signed by the provider"})
    assert posted["author"] == {"user": "eve", "name": "Eve"}
    await client.close()
    # HS256 is not listed: the hub's own dev tokens are refused, its guests' resume tokens still work
    assert await refused(ec_hub, ec_hub.token("bob")) == "Invalid token: HS256 tokens are not accepted here."
    guest = await HubClient.connect(ec_hub.ws_url)
    resume = guest.hello["resume"]
    assert (await accepted(ec_hub, resume))["user"] == guest.hello["user"]["user"]
    await guest.close()


async def test_algorithm_confusion_and_alg_none_are_refused(hub_server, rsa_keys, jwks):
    public_pem = pem(rsa_keys[0]).encode()
    jwks.keys = [jwk(rsa_keys[0], "r1", "RS256")]
    for settings in ({"jwt_public_key": public_pem.decode()}, {"jwks_url": jwks.url}):
        server = start(hub_server, jwt_algorithms=["HS256", "RS256"], **settings)
        assert (await accepted(server, token(rsa_keys[0], "RS256", kid="r1")))["user"] == "ada"
        # The classic attack: HS256 "signed" with the published public key as the HMAC secret. HMAC tokens are
        # only ever checked with the hub's own secret, so the signature is simply wrong.
        for secret in (public_pem, public_pem.strip()):
            reason = await refused(server, forged_hs256(secret))
            assert reason == "Invalid token: Signature verification failed."
        unsigned = jwt.encode({"sub": "mallory", "exp": int(time.time()) + 60}, None, algorithm="none")
        assert await refused(server, unsigned) == "Invalid token: the algorithm 'none' is not accepted."
        # The key decides the algorithm it verifies: an ES256 header naming the RSA key is refused.
        es_header = b64url(b'{"alg":"ES256","kid":"r1"}') + "." + token(rsa_keys[0], "RS256").split(".", 1)[1]
        assert "ES256" in await refused(server, es_header)

    hs_only = start(hub_server)  # the default: HS256 only, no public key at all
    assert await refused(hs_only, token(rsa_keys[0], "RS256")) == "Invalid token: RS256 tokens are not accepted here."


# ---- a JWKS URL --------------------------------------------------------------------------------------------------


async def test_rs256_and_es256_tokens_from_a_jwks_url(hub_server, rsa_keys, ec_key, jwks, server_logs):
    jwks.keys = [jwk(rsa_keys[0], "rsa-1", "RS256"), jwk(ec_key, "ec-1")]  # the EC key names no alg
    server = start(hub_server, jwt_algorithms=["HS256", "RS256", "ES256"], jwks_url=jwks.url)
    logs = server_logs()
    assert jwks.requests == 1  # fetched once, at start
    assert (await accepted(server, token(rsa_keys[0], "RS256", kid="rsa-1")))["user"] == "ada"
    assert (await accepted(server, token(ec_key, "ES256", kid="ec-1", sub="eve")))["user"] == "eve"
    assert (await accepted(server, server.token("bob")))["user"] == "bob"
    reason = await refused(server, token(rsa_keys[0], "RS256", kid="ec-1"))  # the kid of a key of another type
    assert reason == "Invalid token: an RS256 token does not match the key's type."
    reason = await refused(server, token(rsa_keys[1], "RS256", kid="rsa-1"))  # the right kid, a wrong key
    assert reason == "Invalid token: Signature verification failed."
    expired = token(rsa_keys[0], "RS256", kid="rsa-1", exp=int(time.time()) - 10)
    assert await refused(server, expired) == "Token expired."
    assert jwks.requests == 1  # known keys need no fetch
    assert_no_traceback(logs)


async def test_a_new_key_in_the_jwks_is_accepted_and_a_removed_one_refused(hub_server, rsa_keys, jwks):
    """Key rotation: the provider publishes k2 and retires k1. A token naming a kid the hub does not know makes
    it fetch the JWKS again (at most once per jwks_min_refresh_interval), then it is checked again."""
    jwks.keys = [jwk(rsa_keys[0], "k1")]
    server = start(
        hub_server, jwt_algorithms=["RS256"], jwks_url=jwks.url, jwks_min_refresh_interval=0.2, jwks_refresh_interval=60
    )
    assert (await accepted(server, token(rsa_keys[0], "RS256", kid="k1")))["user"] == "ada"
    await asyncio.sleep(0.25)
    assert await refused(server, token(rsa_keys[1], "RS256", kid="k2")) == "Invalid token: unknown signing key 'k2'."
    assert jwks.requests == 2  # it looked, and k2 was not there yet

    jwks.keys = [jwk(rsa_keys[1], "k2")]  # rotation
    await asyncio.sleep(0.25)
    assert (await accepted(server, token(rsa_keys[1], "RS256", kid="k2", sub="new")))["user"] == "new"
    assert jwks.requests == 3
    await asyncio.sleep(0.25)
    assert await refused(server, token(rsa_keys[0], "RS256", kid="k1")) == "Invalid token: unknown signing key 'k1'."


async def test_unknown_kids_refresh_the_jwks_at_most_once_per_interval(hub_server, rsa_keys, jwks):
    jwks.keys = [jwk(rsa_keys[0], "k1")]
    server = start(hub_server, jwt_algorithms=["RS256"], jwks_url=jwks.url, jwks_min_refresh_interval=1.0)
    await asyncio.sleep(1.05)
    forged = [token(rsa_keys[1], "RS256", kid=f"made-up-{i}") for i in range(10)]
    reasons = await asyncio.gather(*(refused(server, each) for each in forged))
    assert all(reason.startswith("Invalid token: unknown signing key 'made-up-") for reason in reasons)
    assert jwks.requests == 2  # the ten shared one fetch
    assert (await refused(server, forged[0])).startswith("Invalid token: unknown signing key")
    assert jwks.requests == 2  # within the interval: no fetch at all


async def test_http_routes_take_the_same_tokens_and_the_background_refresh_finds_new_keys(hub_server, rsa_keys, jwks):
    jwks.keys = [jwk(rsa_keys[0], "k1")]
    server = start(
        hub_server, jwt_algorithms=["HS256", "RS256"], jwks_url=jwks.url, jwks_refresh_interval=0.2,
        jwks_min_refresh_interval=60,
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=server.url) as http:

        async def whoami(jwt_token: str) -> httpx.Response:
            return await http.get("/api/whoami", headers={"Authorization": f"Bearer {jwt_token}"})

        reply = await whoami(token(rsa_keys[0], "RS256", kid="k1"))
        assert reply.json() == {"user": "ada", "name": "Ada", "anonymous": False}
        assert (await whoami(server.token("bob"))).json()["user"] == "bob"
        new = token(rsa_keys[1], "RS256", kid="k2")
        reply = await whoami(new)
        assert reply.status_code == 401
        assert reply.json()["detail"] == "Invalid token: unknown signing key 'k2'."
        jwks.keys.append(jwk(rsa_keys[1], "k2"))

        async def new_key_works() -> bool:
            return (await whoami(new)).status_code == 200

        await eventually(new_key_works)  # the periodic refresh (the minimum interval keeps on-demand ones off)

        publisher = token(rsa_keys[1], "RS256", kid="k2", sub="svc", scope="publish")
        reply = await http.post("/api/publish", headers={"Authorization": f"Bearer {publisher}"})
        assert reply.json() == {"user": "svc"}
        reply = await http.post("/api/publish", headers={"Authorization": f"Bearer {new}"})
        assert reply.status_code == 403  # a valid token without the publish scope


async def test_the_hub_starts_without_its_jwks_and_recovers_when_it_is_back(
    hub_server, rsa_keys, jwks, server_logs, caplog
):
    caplog.set_level(logging.WARNING, logger="hub")
    jwks.keys = [jwk(rsa_keys[0], "k1")]
    jwks.status = 503
    server = start(hub_server, jwt_algorithms=["HS256", "RS256"], jwks_url=jwks.url, jwks_min_refresh_interval=0.1)
    logs = server_logs()
    assert any("could not fetch the JWKS" in r.getMessage() and "HTTP 503" in r.getMessage() for r in caplog.records)
    provider_token = token(rsa_keys[0], "RS256", kid="k1")
    reason = await refused(server, provider_token)
    assert reason == "Invalid token: the hub could not fetch its identity provider's keys (HUB_JWKS_URL); retry later."
    assert (await accepted(server, server.token("bob")))["user"] == "bob"  # the hub's own tokens are unaffected

    jwks.status = 200
    await asyncio.sleep(0.15)
    assert (await accepted(server, provider_token))["user"] == "ada"
    assert_no_traceback(logs)


async def test_a_slow_or_oversized_jwks_neither_blocks_nor_breaks_the_hub(hub_server, rsa_keys, jwks, caplog):
    caplog.set_level(logging.WARNING, logger="hub")
    jwks.keys = [jwk(rsa_keys[0], "k1")]
    jwks.delay = 3.0
    began = time.monotonic()
    start(hub_server, jwt_algorithms=["RS256"], jwks_url=jwks.url, jwks_timeout=0.5, jwks_min_refresh_interval=0.1)
    assert time.monotonic() - began < 2.5  # start-up waited at most about jwks_timeout for the provider
    assert any("timed out" in r.getMessage() for r in caplog.records)

    # A fetch under way never stalls the event loop: a guest's pings come back while a token waits for one.
    jwks.delay = 0.0
    patient = start(hub_server, jwt_algorithms=["RS256"], jwks_url=jwks.url, jwks_min_refresh_interval=0.1)
    jwks.keys.append(jwk(rsa_keys[1], "k2"))
    jwks.delay = 1.0
    guest = await HubClient.connect(patient.ws_url)
    await asyncio.sleep(0.1)
    began = time.monotonic()
    waiting = asyncio.create_task(accepted(patient, token(rsa_keys[1], "RS256", kid="k2")))
    await asyncio.sleep(0.2)
    for _ in range(5):
        sent = time.monotonic()
        await guest.request({"op": "ping"})
        assert time.monotonic() - sent < 0.5
    assert (await waiting)["user"] == "ada"
    assert time.monotonic() - began >= 1.0  # the token did wait for the slow fetch
    await guest.close()

    jwks.delay = 0.0
    jwks.body = b'{"keys":[' + b" " * 300_000 + b"]}"
    big = start(hub_server, jwt_algorithms=["RS256"], jwks_url=jwks.url, jwks_max_bytes=64 * 1024)
    assert any("more than jwks_max_bytes" in r.getMessage() for r in caplog.records)
    assert "could not fetch" in await refused(big, token(rsa_keys[0], "RS256", kid="k1"))


# ---- audience and issuer -----------------------------------------------------------------------------------------


async def test_audience_and_issuer_are_checked_when_configured(hub_server, rsa_keys):
    server = start(
        hub_server, jwt_algorithms=["HS256", "RS256"], jwt_public_key=pem(rsa_keys[0]),
        jwt_audience=["hub-prod", "hub-eu"], jwt_issuer="https://idp.example/",
    )  # fmt: skip
    right = {"aud": "hub-prod", "iss": "https://idp.example/"}
    assert (await accepted(server, token(rsa_keys[0], "RS256", **right)))["user"] == "ada"
    assert (await accepted(server, token(rsa_keys[0], "RS256", **{**right, "aud": ["other", "hub-eu"]})))["user"]
    cases = {
        "Invalid token: wrong audience ('aud'); the token is not meant for this hub.": {**right, "aud": "hub-dev"},
        "Invalid token: it has no audience ('aud'), which this hub requires.": {"iss": right["iss"]},
        "Invalid token: wrong issuer ('iss'); the token is not from this hub's provider.": {
            **right,
            "iss": "https://evil.example/",
        },
        "Invalid token: it has no issuer ('iss'), which this hub requires.": {"aud": right["aud"]},
    }
    for reason, claims in cases.items():
        assert await refused(server, token(rsa_keys[0], "RS256", **claims)) == reason
    assert await refused(server, server.token("bob")) == (  # HS256 tokens are checked too
        "Invalid token: it has no audience ('aud'), which this hub requires."
    )
    # `hub token` puts the first audience and the issuer in its dev tokens when they are configured
    dev = Authenticator(TEST_SECRET, audience=["hub-prod", "hub-eu"], issuer="https://idp.example/").issue("bob")
    assert jwt.decode(dev, TEST_SECRET, algorithms=["HS256"], audience="hub-prod")["iss"] == "https://idp.example/"
    assert (await accepted(server, dev))["user"] == "bob"
    guest = await HubClient.connect(server.ws_url)  # a guest's resume token is the hub's own: no aud needed
    assert (await accepted(server, guest.hello["resume"]))["anonymous"] is True
    await guest.close()
    async with httpx.AsyncClient(base_url=server.url) as http:
        wrong = token(rsa_keys[0], "RS256", **{**right, "aud": "hub-dev"})
        reply = await http.get("/api/whoami", headers={"Authorization": f"Bearer {wrong}"})
        assert reply.status_code == 401
        assert "wrong audience" in reply.json()["detail"]


# ---- configuration -------------------------------------------------------------------------------------------------


def test_the_settings_are_read_from_the_environment(monkeypatch, clean_hub_environment):
    monkeypatch.setenv("HUB_JWT_ALGORITHMS", "HS256, RS256,ES256")
    monkeypatch.setenv("HUB_JWT_AUDIENCE", "hub-prod,hub-eu")
    monkeypatch.setenv("HUB_JWKS_URL", "https://idp.example/.well-known/jwks.json")
    monkeypatch.setenv("HUB_JWKS_MIN_REFRESH_INTERVAL", "0.01")
    settings = HubSettings()
    assert settings.jwt_algorithms == ["HS256", "RS256", "ES256"]
    assert settings.jwt_audience == ["hub-prod", "hub-eu"]
    assert settings.jwks_min_refresh_interval == 0.01
    assert Authenticator.from_settings(settings).jwks is not None
    assert HubSettings(_env_file=None).jwt_issuer is None


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"jwt_algorithms": ["none"]}, "'none' is not accepted"),
        ({"jwt_algorithms": ["RS256"]}, "set HUB_JWT_PUBLIC_KEY or HUB_JWKS_URL"),
        ({"jwks_url": "https://idp.example/jwks"}, "lists no public-key algorithm"),
        ({"jwt_algorithms": ["RS256"], "jwks_url": "file:///etc/passwd"}, "http:// or https://"),
        ({"jwt_algorithms": ["HS512"]}, "at least 64 bytes"),
        ({"jwt_algorithms": ["RS256"], "jwt_public_key": "/no/such/key.pem"}, "nor a readable PEM file"),
        ({"jwt_algorithms": ["RS256"], "jwt_public_key": "-----BEGIN PUBLIC KEY-----\nxx"}, "not a PEM public key"),
    ],
)
def test_a_misconfiguration_is_refused_at_start_with_the_setting_named(tmp_path, settings, error):
    with pytest.raises(ValueError, match=error):
        Authenticator.from_settings(HubSettings(data_dir=tmp_path, secret=TEST_SECRET, **settings))


def test_a_public_key_of_the_wrong_type_is_refused_at_start(tmp_path, ec_key):
    settings = HubSettings(data_dir=tmp_path, secret=TEST_SECRET, jwt_algorithms=["RS256"], jwt_public_key=pem(ec_key))
    with pytest.raises(ValueError, match="verifies none of RS256"):
        Authenticator.from_settings(settings)


def test_hub_token_carries_the_configured_audience_and_issuer(monkeypatch, clean_hub_environment):
    monkeypatch.setenv("HUB_JWT_AUDIENCE", "hub-prod,hub-eu")
    monkeypatch.setenv("HUB_JWT_ISSUER", "https://idp.example/")
    result = CliRunner().invoke(cli, ["token", "--user", "alice", "--secret", TEST_SECRET])
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.stdout.strip(), TEST_SECRET, algorithms=["HS256"], audience="hub-prod")
    assert (claims["sub"], claims["iss"]) == ("alice", "https://idp.example/")
    assert result.stderr == "signed with the secret from --secret\n"  # only the note of which secret (issue 18)

    monkeypatch.setenv("HUB_JWT_ALGORITHMS", "RS256")
    monkeypatch.setenv("HUB_JWKS_URL", "https://idp.example/jwks")
    result = CliRunner().invoke(cli, ["token", "--user", "alice", "--secret", TEST_SECRET])
    assert result.exit_code == 0
    assert "HUB_JWT_ALGORITHMS does not list HS256" in result.stderr


_MEMBER = st.one_of(
    st.none(),
    st.integers(-1000, 1000),
    st.lists(st.integers(0, 9), max_size=2),
    st.sampled_from(["AQAB", "zz", "P-256", "P-384", "Ed25519", "RS256", "ES256", "sig", "enc", "k1", ""]),
)
_JWK = st.fixed_dictionaries(
    {"kty": st.sampled_from(["RSA", "EC", "OKP", "oct", "x"])},
    optional=dict.fromkeys(["n", "e", "crv", "x", "y", "d", "alg", "kid", "use", "k"], _MEMBER),
)


@fuzzing(max_examples=300, deadline=None)
@given(st.lists(_JWK, max_size=3))
def test_a_malformed_jwks_is_a_jwks_error_and_nothing_else(keys):
    with contextlib.suppress(JwksError):
        parse_jwks(orjson.dumps({"keys": keys}))
