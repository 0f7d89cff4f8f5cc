"""``hub notify``: send a notification through a hub's HTTP API (POST /api/notifications). (``hub publish`` is the
core's command for any channel.)"""

from __future__ import annotations

from typing import Annotated, Any, get_args

import httpx
import orjson
import typer

from hub_realtime_plugins.notifications.messages import Level

USAGE_ERROR = 2
FAILURE = 1


def _fail(message: str, code: int) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


def _describe_error(response: httpx.Response) -> str:
    """One readable line per problem: the hub's sentence, or each field error of a 422."""
    try:
        detail: Any = response.json().get("detail")
    except ValueError:
        detail = response.text.strip()[:300]
    if isinstance(detail, list):
        problems = []
        for item in detail:
            loc = [str(part) for part in item.get("loc", ()) if part not in ("body", "header")]
            problems.append(f"{'.'.join(loc) or 'request'}: {item.get('msg', item)}")
        detail = "; ".join(problems)
    return f"HTTP {response.status_code}: {detail or response.reason_phrase}"


def notify(
    title: Annotated[str, typer.Option(help="The notification's title (1..200 characters).")],
    user: Annotated[list[str] | None, typer.Option(help="A recipient's user id; repeat for several.")] = None,
    everyone: Annotated[bool, typer.Option("--everyone", help="Send to everyone (one broadcast).")] = False,
    body: Annotated[str, typer.Option(help="The text under the title (up to 2000 characters).")] = "",
    url: Annotated[str | None, typer.Option(help="A link: http(s)://... or a relative path.")] = None,
    level: Annotated[str, typer.Option(help="info, success, warning or error.")] = "info",
    ttl: Annotated[float | None, typer.Option(help="Seconds until it expires (default: the hub's).")] = None,
    data: Annotated[str | None, typer.Option(help="A small JSON object passed along to clients.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Makes a retry deliver once (the same key returns the first result).")
    ] = None,
    hub: Annotated[
        str, typer.Option("--server", "--hub", envvar="HUB_URL", help="The hub's base URL (--hub: its old name).")
    ] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str | None, typer.Option(envvar="HUB_API_KEY", help="An API key from the hub's HUB_API_KEYS.")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="HUB_TOKEN", help="Or a JWT with the publish scope (hub token --scope publish)."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the hub.")] = 10.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the hub's JSON reply.")] = False,
) -> None:
    """Send a notification to users (--user, repeatable) or to --everyone, through the hub's HTTP API.

    Exit status: 0 sent (or an Idempotency-Key retry), 1 the hub refused or could not be reached, 2 usage.
    """
    if everyone == bool(user):
        raise _fail("give --user (one or more) or --everyone, not both", USAGE_ERROR)
    if level not in get_args(Level):
        raise _fail(f"--level must be one of {', '.join(get_args(Level))}", USAGE_ERROR)
    payload: dict[str, Any] = {"title": title, "body": body, "level": level}
    if everyone:
        payload["everyone"] = True
    else:
        payload["users"] = user
    if url is not None:
        payload["url"] = url
    if ttl is not None:
        payload["ttl"] = ttl
    if data is not None:
        try:
            payload["data"] = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise _fail(f"--data is not JSON: {exc}", USAGE_ERROR) from None
    headers: dict[str, str] = {}
    if api_key:
        headers["X-API-Key"] = api_key
    elif token:
        headers["Authorization"] = f"Bearer {token}"
    else:
        raise _fail("give --api-key (or HUB_API_KEY) or --token (or HUB_TOKEN)", USAGE_ERROR)
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    endpoint = hub.rstrip("/") + "/api/notifications"
    try:
        response = httpx.post(endpoint, json=payload, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach the hub at {hub}: {exc}", FAILURE) from None
    if not response.is_success:
        raise _fail(_describe_error(response), FAILURE)
    result = response.json()
    if json_output:
        typer.echo(response.text)
        return
    audience = "everyone" if result["to"] == "everyone" else ", ".join(result["recipients"])
    note = " (duplicate: delivered before, not again)" if result.get("duplicate") else ""
    typer.echo(f"sent {result['id']} to {audience}{note}")


def register(cli: typer.Typer) -> None:
    cli.command("notify", short_help="Send a notification to users or to everyone.")(notify)
