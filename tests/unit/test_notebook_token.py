"""The pure parts of a notebook's own Keycloak token: the endpoint's decisions and
answers, the roles that grant the scope, the configuration, and the command's client."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

import httpx
import pytest
from jupyterhub import scopes as hub_scopes
from jupyterhub.roles import get_default_roles
from traitlets.config import PyFileConfigLoader

from tests.helpers import DEPLOYMENT_ENV, REPO_ROOT
from valeria_hub import cli, token_client
from valeria_hub.auth import handlers, notebook_token
from valeria_hub.auth.notebook_token import Action, decide
from valeria_hub.auth.state import auth_state_layout, without_tokens
from valeria_hub.jobs.hub_service import service_roles

NOW = 1_700_000_000.0
SERVER_DEFAULTS = next(r["scopes"] for r in get_default_roles() if r["name"] == "server")


def state_at(obtained: float, lifetime: float = 300.0) -> dict:
    """auth_state as the authenticator writes it, for tokens obtained at ``obtained``."""
    info = {
        "access_token": f"at-{obtained}",
        "refresh_token": "rt-secret",
        "id_token": "id-secret",
        "expires_in": lifetime,
        "refresh_expires_in": 1800,
    }
    return auth_state_layout(info, {"sub": "s", "preferred_username": "alice"}, obtained)


# -- decisions ---------------------------------------------------------------------------
def test_a_token_valid_long_enough_is_served_as_it_is():
    d = decide(state_at(NOW - 10), 60, NOW)
    assert d.action is Action.SERVE and d.remaining == 290 and d.lifetime == 300


def test_a_token_in_its_second_half_and_too_short_is_refreshed():
    d = decide(state_at(NOW - 260), 60, NOW)  # 40 s left
    assert d.action is Action.REFRESH and d.refresh_validity == 60
    # asking for more than half: the refresh is asked for half, not more
    d = decide(state_at(NOW - 260), 200, NOW)
    assert d.action is Action.REFRESH and d.refresh_validity == 150


def test_more_than_half_the_lifetime_is_refused_without_a_refresh_on_a_young_token():
    d = decide(state_at(NOW - 10), 200, NOW)  # 290 s left, but 200 > 150
    assert d.action is Action.TOO_LONG and d.lifetime == 300
    status, message = notebook_token.refusal(d, 200)
    assert status == 400 and "at most 150 s" in message and "200 s" in message


def test_after_a_refresh_nothing_is_refreshed_again():
    fresh = state_at(NOW)
    assert decide(fresh, 100, NOW, may_refresh=False).action is Action.SERVE
    assert decide(fresh, 200, NOW, may_refresh=False).action is Action.TOO_LONG
    # the refresh did not happen (Keycloak down, the old token kept): 503
    old = state_at(NOW - 280)
    d = decide(old, 60, NOW, may_refresh=False)
    assert d.action is Action.UNAVAILABLE
    status, message = notebook_token.refusal(d, 60)
    assert status == 503 and "valid for 20 more seconds" in message


@pytest.mark.parametrize(
    "auth_state", [None, {}, without_tokens(state_at(NOW - 10), now=NOW), {"access_token": ""}]
)
def test_no_tokens_means_log_in_again(auth_state):
    d = decide(auth_state, 60, NOW)
    assert d.action is Action.LOGIN
    assert notebook_token.refusal(d, 60) == (401, notebook_token.LOGIN_MESSAGE)
    assert "log in to the hub again" in notebook_token.LOGIN_MESSAGE


def test_an_expired_access_token_is_refreshed_not_refused():
    assert decide(state_at(NOW - 400), 0, NOW).action is Action.REFRESH


def test_unknown_expiry_or_lifetime():
    unknown = {"access_token": "at"}
    assert decide(unknown, 60, NOW).action is Action.SERVE
    no_obtained = {**state_at(NOW - 10), "obtained_at": None}  # older releases' auth_state
    assert decide(no_obtained, 60, NOW).action is Action.SERVE
    d = decide(no_obtained, 295, NOW)
    assert d.action is Action.REFRESH and d.refresh_validity == 295


@pytest.mark.parametrize("lifetime", [20.0, 60.0, 300.0])
@pytest.mark.parametrize("min_validity", [0.0, 5.0, 10.0])
def test_at_most_one_refresh_per_half_lifetime_however_often_asked(lifetime, min_validity):
    """A notebook asking every second for 10 lifetimes: every answer is a token valid for
    min_validity, and Keycloak sees at most one refresh per half lifetime."""
    obtained, refreshes = 0.0, 0
    for second in range(int(10 * lifetime)):
        now = float(second)
        d = decide(state_at(obtained, lifetime), min_validity, now)
        if d.action is Action.REFRESH:
            refreshes += 1
            obtained = now
            d = decide(state_at(obtained, lifetime), min_validity, now, may_refresh=False)
        assert d.action is Action.SERVE
        assert d.remaining is not None and d.remaining >= min_validity
    assert refreshes <= 2 * 10 + 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 60.0), ("", 60.0), ("0", 0.0), ("12.5", 12.5), ("3600", 3600.0)],
)
def test_min_validity_parsed(raw, expected):
    assert notebook_token.parse_min_validity(raw) == expected


@pytest.mark.parametrize("raw", ["-1", "3601", "nan", "inf", "-inf", "abc", "1e400"])
def test_min_validity_refused(raw):
    with pytest.raises(ValueError, match="from 0 to 3600"):
        notebook_token.parse_min_validity(raw)


def test_the_answer_holds_the_access_token_and_its_expiry_only():
    state = state_at(NOW - 10)
    answer = notebook_token.token_answer(state, NOW + 0.5)
    assert answer == {
        "access_token": state["access_token"],
        "access_token_expires_at": NOW + 290,
        "expires_in": 289,
    }
    text = json.dumps(answer)
    assert "rt-secret" not in text and "id-secret" not in text
    assert notebook_token.token_answer(state, NOW + 1000)["expires_in"] == 0


def test_refusal_messages_name_the_caller_and_the_scope():
    assert "belongs to the user alice" in notebook_token.not_own_token("user", "alice")
    assert "belongs to the service jobs" in notebook_token.not_own_token("service", "jobs")
    assert notebook_token.KEYCLOAK_TOKEN_SCOPE in notebook_token.scope_missing()


# -- roles and configuration ----------------------------------------------------------------
def test_roles_add_the_own_token_scope_to_user_and_server():
    roles = service_roles()
    before = json.dumps(roles)
    out = notebook_token.with_keycloak_token_scope(roles, SERVER_DEFAULTS)
    assert json.dumps(roles) == before  # the input is not changed
    by_name = {r["name"]: r for r in out}
    user_before = next(r for r in roles if r["name"] == "user")["scopes"]
    assert by_name["user"]["scopes"] == [*user_before, "custom:valeria:keycloak-token!user"]
    assert by_name["server"]["scopes"] == [*SERVER_DEFAULTS, "custom:valeria:keycloak-token!user"]
    assert "users:activity!user" in by_name["server"]["scopes"]  # the defaults are kept
    # applied twice: the same roles
    assert notebook_token.with_keycloak_token_scope(out, SERVER_DEFAULTS) == out
    # no scope is ever unfiltered: the grant is always to oneself
    for role in out:
        for scope in role.get("scopes", []):
            if scope.startswith("custom:valeria:"):
                assert scope.endswith("!user")


def test_an_existing_server_role_keeps_its_scopes():
    roles = [{"name": "server", "scopes": ["read:users:name!user"]}]
    out = notebook_token.with_keycloak_token_scope(roles, SERVER_DEFAULTS)
    server = next(r for r in out if r["name"] == "server")
    assert server["scopes"] == ["read:users:name!user", "custom:valeria:keycloak-token!user"]
    assert next(r for r in out if r["name"] == "user")["scopes"][0] == "self"


def test_jupyterhub_accepts_the_custom_scope():
    hub_scopes.define_custom_scopes(notebook_token.CUSTOM_SCOPES)  # raises if malformed
    assert notebook_token.KEYCLOAK_TOKEN_SCOPE in hub_scopes.scope_definitions


def test_the_deployment_config_defines_the_scope_and_grants_it(tmp_path, monkeypatch):
    for key in list(os.environ):
        if key.startswith(("JUPYTERHUB_", "KEYCLOAK_", "VAULT_", "JOBS_", "KUBERNETES_")):
            monkeypatch.delenv(key)
    for key, value in DEPLOYMENT_ENV.items():
        monkeypatch.setenv(key, value)
    config = PyFileConfigLoader("jupyterhub_config.py", path=str(REPO_ROOT)).load_config()
    assert dict(config.JupyterHub.custom_scopes) == notebook_token.CUSTOM_SCOPES
    roles = {r["name"]: r for r in config.JupyterHub.load_roles}
    assert "custom:valeria:keycloak-token!user" in roles["user"]["scopes"]
    assert "self" in roles["user"]["scopes"]
    assert roles["server"]["scopes"] == [*SERVER_DEFAULTS, "custom:valeria:keycloak-token!user"]
    assert "idle-culler" in roles  # roles added after it are still there
    for role in roles.values():  # no service or other role reaches anyone's token
        if role["name"] not in ("user", "server"):
            assert not [s for s in role.get("scopes", []) if s.startswith("custom:valeria")]


# -- the command's client ----------------------------------------------------------------
ENV = {
    "JUPYTERHUB_API_URL": "http://hub:8081/hub/api",
    "JUPYTERHUB_API_TOKEN": "server-secret-token",
    "JUPYTERHUB_USER": "alice",
}


def test_the_client_asks_the_handlers_route_with_the_same_limits():
    creds = token_client.credentials_from({**ENV, "JUPYTERHUB_USER": "a b/c@x"})
    url = creds.token_url()
    assert url == "http://hub:8081/hub/api/valeria/users/a%20b%2Fc%40x/fresh-tokens"
    assert re.fullmatch(handlers.FRESH_TOKENS_PATH, "/api" + url.split("/hub/api", 1)[1])
    assert token_client.DEFAULT_MIN_VALIDITY == notebook_token.DEFAULT_MIN_VALIDITY
    assert token_client.MAX_MIN_VALIDITY == notebook_token.MAX_MIN_VALIDITY
    assert "server-secret-token" not in repr(creds)


def test_outside_a_notebook_the_command_names_what_is_missing():
    with pytest.raises(token_client.TokenError) as e:
        token_client.credentials_from({"JUPYTERHUB_USER": "alice"})
    assert e.value.exit_code == 2
    assert "JUPYTERHUB_API_URL, JUPYTERHUB_API_TOKEN not set" in str(e.value)


def answer(status: int, body: object | str) -> httpx.Response:
    if isinstance(body, str):
        return httpx.Response(status, text=body)
    return httpx.Response(status, json=body)


def test_a_token_answer_is_read_to_its_known_keys():
    got = token_client.read_answer(
        answer(
            200,
            {
                "access_token": "at",
                "access_token_expires_at": 5.0,
                "expires_in": 3,
                "refresh_token": "never-printed",
            },
        )
    )
    assert got == {"access_token": "at", "access_token_expires_at": 5.0, "expires_in": 3}
    assert token_client.render(got, as_json=False) == "at"
    assert json.loads(token_client.render(got, as_json=True)) == got


@pytest.mark.parametrize(
    ("status", "body", "code", "message"),
    [
        (401, {"status": 401, "message": "log in to the hub again"}, 1, "log in to the hub again"),
        (403, {"status": 403, "message": "lacks the scope"}, 1, "lacks the scope"),
        (400, {"status": 400, "message": "at most 150 s"}, 1, "at most 150 s"),
        (404, "<html>not found</html>", 1, "the hub answered HTTP 404"),
        (500, {"status": 500}, 1, "the hub answered HTTP 500"),
        (502, "<html>bad gateway</html>", 3, "the hub answered HTTP 502"),
        (503, {"status": 503, "message": "Keycloak cannot be reached"}, 3, "Keycloak cannot"),
        (200, "not json", 1, "holds no access token"),
        (200, {"access_token": ""}, 1, "holds no access token"),
        (200, ["at"], 1, "holds no access token"),
    ],
)
def test_refusals_become_exit_codes_and_messages(status, body, code, message):
    with pytest.raises(token_client.TokenError) as e:
        token_client.read_answer(answer(status, body))
    assert e.value.exit_code == code
    assert message in str(e.value)


def test_fetch_sends_the_servers_token_and_the_minimum_validity():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "at", "expires_in": 90})

    creds = token_client.credentials_from(ENV)
    got = token_client.fetch(creds, 12.5, timeout=4, transport=httpx.MockTransport(handler))
    assert got["access_token"] == "at"
    (request,) = seen
    assert request.method == "GET"
    assert request.url.path == "/hub/api/valeria/users/alice/fresh-tokens"
    assert request.url.params["min_validity"] == "12.5"
    assert request.headers["authorization"] == "token server-secret-token"
    assert request.extensions["timeout"]["read"] == 4


def test_an_unreachable_hub_is_exit_3_without_the_token():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    creds = token_client.credentials_from(ENV)
    with pytest.raises(token_client.TokenError) as e:
        token_client.fetch(creds, 60, transport=httpx.MockTransport(handler))
    assert e.value.exit_code == 3
    assert "cannot reach the hub at http://hub:8081/hub/api" in str(e.value)
    assert "server-secret-token" not in str(e.value)


def test_the_command_line(capsys):
    parser = cli.build_parser()
    args = parser.parse_args(["token", "--min-validity", "30", "--json"])
    assert (args.min_validity, args.json, args.timeout) == (30.0, True, 10.0)
    assert args.func is token_client.run
    assert parser.parse_args(["token"]).min_validity == 60.0
    for bad in (["--min-validity", "-5"], ["--min-validity", "nan"], ["--timeout", "0"]):
        with pytest.raises(SystemExit) as e:
            parser.parse_args(["token", *bad])
        assert e.value.code == 2
    code = token_client.run(argparse.Namespace(min_validity=60.0, json=False, timeout=1.0), env={})
    out = capsys.readouterr()
    assert code == 2 and out.out == "" and "not set" in out.err


def test_the_command_list_is_the_same_without_importing_the_commands():
    """``valeria-hub --help`` names every command with its own help, from the names alone."""
    assert cli.build_parser(()).format_help() == cli.build_parser().format_help()
    assert [cli.chosen_command(a) for a in (["token"], ["-h"], ["nope"], ["jobs", "list"])] == [
        "token",
        None,
        None,
        "jobs",
    ]


def test_the_token_command_imports_none_of_the_hubs_dependencies():
    """What a notebook image lacks (hvac, kubernetes, YAML, JupyterHub, FastAPI) and the
    other commands' modules are never imported by ``valeria-hub token``."""
    code = (
        "import sys\nfrom valeria_hub import cli\n"
        "status = cli.main(['token'])\nprint(status)\nprint(' '.join(sorted(sys.modules)))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    status, modules = proc.stdout.splitlines()
    assert status == "2" and "JUPYTERHUB_API_URL" in proc.stderr  # not in a notebook
    loaded = set(modules.split())
    assert "httpx" in loaded and "valeria_hub.token_client" in loaded  # the control
    heavy = {"hvac", "kubernetes_asyncio", "yaml", "jupyterhub", "fastapi", "traitlets"}
    heavy |= {"valeria_hub.onboarding", "valeria_hub.jobs_client", "valeria_hub.jobs"}
    assert not heavy & loaded, heavy & loaded
