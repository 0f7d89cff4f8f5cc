"""The admin page's HTTP side on a real server: GET /admin with its protective headers, and POST /admin/login,
which checks the credential from the Authorization header (before any body), refuses other sites, and answers a
socket token that opens admin:overview."""

from __future__ import annotations

import time

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import hub_realtime_plugins.chat
from hub.testing import HubClient, HubServer, ReplyError

API_KEY = "admin-http-test-key-0123456789abcdef"
CHAT = {"chat": hub_realtime_plugins.chat.Chat}


@pytest.fixture
def server(hub_server) -> HubServer:
    return hub_server(plugins=CHAT, api_keys=[API_KEY], admin_token_ttl=120.0)


async def login(server: HubServer, credential: str | None, **headers: str) -> httpx.Response:
    if credential is not None:
        headers["Authorization"] = f"Bearer {credential}"
    async with httpx.AsyncClient(base_url=server.url) as http:
        return await http.post("/admin/login", headers=headers)


async def test_the_page_is_served_with_headers_that_keep_it_to_itself(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        page = await http.get("/admin")
        script = await http.get("/static/admin.js")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/admin.js">' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert script.status_code == 200
    assert 'from "/hub.js"' in script.text  # the page runs on the hub's own SDK


async def test_an_admin_token_is_its_own_socket_token(server):
    token = server.token("root", name="Root", scopes=("admin",))
    answer = await login(server, token)
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["token"] == token
    assert body["user"] == {"user": "root", "name": "Root"}
    assert body["expires_at"] > time.time()


async def test_an_api_key_gets_a_short_lived_admin_token_that_opens_the_channel(server):
    answer = await login(server, API_KEY, Origin=server.url)  # the page's own origin
    assert answer.status_code == 200
    body = answer.json()
    assert body["user"] == {"user": "api-key", "name": "API key"}
    assert time.time() + 110 < body["expires_at"] <= time.time() + 121  # HUB_ADMIN_TOKEN_TTL
    admin = await HubClient.connect(server.ws_url, token=body["token"])
    try:
        assert admin.hello["user"] == {"user": "api-key", "name": "API key", "anonymous": False}
        snapshot = (await admin.sub("admin:overview"))["snapshot"]
        assert snapshot["connections"] == 1
    finally:
        await admin.close()


@pytest.mark.parametrize(
    ("credential", "status", "detail"),
    [
        (None, 401, "Send 'X-API-Key: <key>' or 'Authorization: Bearer <token with the admin scope>'."),
        ("not-a-key", 401, "Unknown API key."),
        ("a.b.c", 401, "Invalid token"),
    ],
)
async def test_a_missing_or_wrong_credential_is_401(server, credential, status, detail):
    answer = await login(server, credential)
    assert answer.status_code == status
    assert answer.json()["detail"].startswith(detail)
    assert "token" not in answer.json()


async def test_a_token_without_the_admin_scope_is_403(server, hub_client):
    for token in (server.token("alice"), server.token("backend", scopes=("publish",))):
        answer = await login(server, token)
        assert answer.status_code == 403
        assert "lacks the 'admin' scope" in answer.json()["detail"]
    guest = await hub_client(server)  # a guest's resume token is a valid token, and never has a scope
    answer = await login(server, guest.hello["resume"])
    assert answer.status_code == 403


async def test_credentials_are_checked_before_any_body_and_the_body_is_never_read(server):
    async with httpx.AsyncClient(base_url=server.url) as http:
        refused = await http.post("/admin/login", content=b"{not json", headers={"Content-Type": "application/json"})
        accepted = await http.post(
            "/admin/login", content=b'{"ignored": true}', headers={"Authorization": f"Bearer {API_KEY}"}
        )
    assert refused.status_code == 401
    assert accepted.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_other_sites_are_refused_even_with_a_good_credential(hub_server, headers):
    # an origin the socket itself accepts (HUB_ALLOWED_ORIGINS) is no exception: the login is same-origin only
    server = hub_server(plugins=CHAT, api_keys=[API_KEY], allowed_origins=["https://evil.example"])
    answer = await login(server, API_KEY, **headers)
    assert answer.status_code == 403
    assert answer.json()["detail"] == "The admin login takes requests from the hub's own pages only."


async def test_an_api_key_is_refused_when_the_hub_takes_no_hs256_tokens(hub_server):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    server = hub_server(plugins=CHAT, api_keys=[API_KEY], jwt_algorithms=["RS256"], jwt_public_key=pem.decode())
    answer = await login(server, API_KEY)
    assert answer.status_code == 403
    assert "HUB_JWT_ALGORITHMS" in answer.json()["detail"]


async def test_admin_off_serves_neither_the_page_nor_the_login(hub_server, hub_client):
    server = hub_server(plugins=CHAT, api_keys=[API_KEY], admin=False)
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/admin")).status_code == 404
        assert (await http.post("/admin/login", headers={"Authorization": f"Bearer {API_KEY}"})).status_code == 404
    admin = await hub_client(server, token=server.token("root", scopes=("admin",)))
    with pytest.raises(ReplyError) as refused:
        await admin.sub("admin:overview")
    assert refused.value.code == "unknown_channel"
