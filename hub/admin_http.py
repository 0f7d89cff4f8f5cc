"""The admin page's HTTP side: the page at ``GET /admin`` and ``POST /admin/login``, which checks the operator's
credential (a JWT with the ``admin`` scope, or a key of ``HUB_API_KEYS``) and answers the token the page's
socket signs in with. Both same-origin only; the credential travels in the ``Authorization`` header, never in
the URL, and the login reads no body."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse

from hub.admin import ADMIN_SCOPE
from hub.auth import ALGORITHM, origin_allowed
from hub.http_auth import request_publisher

if TYPE_CHECKING:
    from hub.auth import Authenticator
    from hub.settings import HubSettings

PAGE = Path(__file__).parent / "static" / "admin.html"

# The page is the operator's: no other site may frame it, cache it or learn where it came from.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_NO_STORE = {"Cache-Control": "no-store"}


def _jwt_shaped(credential: str) -> bool:
    return credential.count(".") == 2


def _same_origin(request: Request) -> bool:
    """A request of the hub's own pages: a browser's ``Origin`` names the hub itself (HUB_ALLOWED_ORIGINS does
    not apply), and ``Sec-Fetch-Site`` does not say another site sent it. A client without either (curl, a
    script) is no browser page and carries no victim's credentials."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    headers = {key: value for key, value in request.headers.raw}
    return origin_allowed(headers, [])


def admin_routes(settings: HubSettings, authenticator: Authenticator) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/admin")
    async def page() -> FileResponse:
        return FileResponse(PAGE, media_type="text/html", headers=PAGE_HEADERS)

    @router.post("/admin/login")
    async def login(request: Request, authorization: str | None = Header(default=None)) -> JSONResponse:
        """The socket token for a credential, or 401 (none, or not valid) / 403 (cross-origin, no admin scope).

        A JWT with the ``admin`` scope is its own socket token; an API key gets a new HS256 token for the user
        ``api-key`` with the scope, valid for ``HUB_ADMIN_TOKEN_TTL`` seconds."""
        if not _same_origin(request):
            raise HTTPException(403, "The admin login takes requests from the hub's own pages only.")
        identity = request_publisher(settings, authenticator, authorization, None, scope=ADMIN_SCOPE)
        credential = (authorization or "").strip().partition(" ")[2].strip()
        if _jwt_shaped(credential):  # a token with the scope (a guest's never has one)
            token, expires_at = credential, identity.expires_at
        else:
            if ALGORITHM not in authenticator.algorithms:
                raise HTTPException(
                    403,
                    f"An API key cannot open the admin page here: its socket token is {ALGORITHM}, which "
                    f"HUB_JWT_ALGORITHMS does not accept. Sign in with a token that has the admin scope.",
                )
            ttl = settings.admin_token_ttl
            token = authenticator.issue(identity.user, name="API key", ttl=ttl, scopes=(ADMIN_SCOPE,))
            expires_at = authenticator.verify(token).expires_at
        body = {"token": token, "user": identity.public(), "expires_at": expires_at}
        return JSONResponse(body, headers=_NO_STORE)

    return router
