"""HTTP control surface of the Keycloak stand-in, under ``/_control/keycloak``.

The same operations as the stand-in's in-process methods, for tests and demos that
drive it from another process: users, clients, sessions, token expiry, lifetimes,
key rotation, the clock, token-endpoint counters and back-channel deliveries.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .standin import KeycloakStandIn

PREFIX = "/_control/keycloak"


def _user_view(user: Any) -> dict[str, Any]:
    data = asdict(user)
    data.pop("password", None)
    return data


def _bad(e: Exception) -> web.Response:
    return web.json_response({"error": str(e)}, status=400)


def add_control_routes(kc: KeycloakStandIn, app: web.Application) -> None:
    async def body(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        data = await request.json()
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data

    async def get_sessions(request: web.Request) -> web.Response:
        sa = request.query.get("service_accounts", "false").lower() == "true"
        return web.json_response({"sessions": kc.list_sessions(include_service_accounts=sa)})

    async def delete_session(request: web.Request) -> web.Response:
        ended = await kc.end_session(request.match_info["sid"])
        return web.json_response({"ended": ended}, status=200 if ended else 404)

    async def delete_user_sessions(request: web.Request) -> web.Response:
        try:
            n = await kc.end_user_sessions(request.match_info["username"])
        except KeyError:
            return web.json_response({"error": "unknown user"}, status=404)
        return web.json_response({"ended": n})

    async def post_user(request: web.Request) -> web.Response:
        try:
            user = kc.add_user(**await body(request))
        except (ValueError, KeyError, TypeError) as e:
            return _bad(e)
        return web.json_response(_user_view(user), status=201)

    async def patch_user(request: web.Request) -> web.Response:
        try:
            user = kc.update_user(request.match_info["username"], **await body(request))
        except KeyError:
            return web.json_response({"error": "unknown user"}, status=404)
        except (ValueError, TypeError) as e:
            return _bad(e)
        return web.json_response(_user_view(user))

    async def get_user(request: web.Request) -> web.Response:
        user = kc.realm.users.get(request.match_info["username"].lower())
        if user is None:
            return web.json_response({"error": "unknown user"}, status=404)
        return web.json_response(_user_view(user))

    async def post_client(request: web.Request) -> web.Response:
        try:
            client = kc.add_client(**await body(request))
        except (ValueError, KeyError, TypeError) as e:
            return _bad(e)
        return web.json_response({"client_id": client.client_id}, status=201)

    async def patch_client(request: web.Request) -> web.Response:
        try:
            client = kc.update_client(request.match_info["client_id"], **await body(request))
        except KeyError:
            return web.json_response({"error": "unknown client"}, status=404)
        except (ValueError, TypeError) as e:
            return _bad(e)
        return web.json_response({"client_id": client.client_id})

    async def expire_tokens(request: web.Request) -> web.Response:
        kc.expire_access_tokens()
        return web.json_response({"access_cutoff": kc.access_cutoff})

    async def put_lifetimes(request: web.Request) -> web.Response:
        try:
            return web.json_response(kc.set_lifetimes(**await body(request)))
        except (ValueError, TypeError) as e:
            return _bad(e)

    async def rotate(request: web.Request) -> web.Response:
        data = await body(request)
        kid = kc.rotate_key(keep_old=bool(data.get("keep_old", True)))
        return web.json_response({"kid": kid, "keys": [k.kid for k in kc.keys.rsa_keys]})

    async def get_clock(request: web.Request) -> web.Response:
        return web.json_response({"now": kc.clock(), "offset": kc.clock_offset})

    async def post_clock(request: web.Request) -> web.Response:
        data = await body(request)
        if "offset" in data:
            kc.clock_offset = float(data["offset"])
        if "advance" in data:
            kc.advance(float(data["advance"]))
        return await get_clock(request)

    async def get_counters(request: web.Request) -> web.Response:
        return web.json_response({"token": kc.token_counts()})

    async def delete_counters(request: web.Request) -> web.Response:
        kc.reset_counters()
        return web.json_response({"token": {}})

    async def get_backchannel(request: web.Request) -> web.Response:
        return web.json_response({"deliveries": kc.backchannel_log})

    async def post_tokens(request: web.Request) -> web.Response:
        data = await body(request)
        try:
            return web.json_response(kc.issue_tokens(**data))
        except (KeyError, TypeError) as e:
            return _bad(e)

    r = app.router
    r.add_get(f"{PREFIX}/sessions", get_sessions)
    r.add_delete(f"{PREFIX}/sessions/{{sid}}", delete_session)
    r.add_post(f"{PREFIX}/users", post_user)
    r.add_get(f"{PREFIX}/users/{{username}}", get_user)
    r.add_patch(f"{PREFIX}/users/{{username}}", patch_user)
    r.add_delete(f"{PREFIX}/users/{{username}}/sessions", delete_user_sessions)
    r.add_post(f"{PREFIX}/clients", post_client)
    r.add_patch(f"{PREFIX}/clients/{{client_id}}", patch_client)
    r.add_post(f"{PREFIX}/expire-access-tokens", expire_tokens)
    r.add_put(f"{PREFIX}/lifetimes", put_lifetimes)
    r.add_post(f"{PREFIX}/keys/rotate", rotate)
    r.add_get(f"{PREFIX}/clock", get_clock)
    r.add_post(f"{PREFIX}/clock", post_clock)
    r.add_get(f"{PREFIX}/counters", get_counters)
    r.add_delete(f"{PREFIX}/counters", delete_counters)
    r.add_get(f"{PREFIX}/backchannel", get_backchannel)
    r.add_post(f"{PREFIX}/tokens", post_tokens)
