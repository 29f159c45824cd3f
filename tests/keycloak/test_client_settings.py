"""README's "Required client settings" against Keycloak's own server.

The README's table names, for each required setting, the field of the client's
representation and its value; here every row is read from the README and checked on
the real server's representation of the demo realm's hub client (each check is also
shown to fail on a client that lacks the setting), and one of them is shown to matter:
with front-channel logout on, Keycloak sends the hub no back-channel logout.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from devstack.keycloak.real import KEYCLOAK_VERSION
from tests.helpers.real_keycloak import (
    browser_client,
    checked,
    client_changed,
    hub_client_representation,
    new_user,
    sessions_of,
    signed_in,
    tokens_gone,
)

pytestmark = pytest.mark.keycloak

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_rows() -> dict[str, str]:
    """The README table: representation field (mappers as ``protocolMappers:TYPE``) ->
    the required-value cell."""
    text = README.read_text()
    section = text[text.index("### Required client settings") :]
    section = section[: section.index("\nOptional")]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[1] in ("representation", "---"):
            continue
        rows[":".join(re.findall(r"`([^`]+)`", cells[1]))] = cells[2]
    return rows


def mapper(rep: dict, kind: str) -> dict:
    found = [m["config"] for m in rep.get("protocolMappers", []) if m["protocolMapper"] == kind]
    return found[0] if found else {}


def attribute(name: str) -> Callable[[dict], Any]:
    return lambda rep: rep.get("attributes", {}).get(name)


Check = Callable[[dict, str], bool]
# field -> (the value text the README must show, the check on a representation, a
# change that breaks the setting)
REQUIRED: dict[str, tuple[str, Check, Callable[[dict], None]]] = {
    "protocol": (
        "`openid-connect`",
        lambda rep, hub: rep["protocol"] == "openid-connect",
        lambda rep: rep.update(protocol="saml"),
    ),
    "publicClient": (
        "`false`",
        lambda rep, hub: rep["publicClient"] is False and rep["bearerOnly"] is False,
        lambda rep: rep.update(publicClient=True),
    ),
    "clientAuthenticatorType": (
        "`client-secret`",
        lambda rep, hub: rep["clientAuthenticatorType"] == "client-secret",
        lambda rep: rep.update(clientAuthenticatorType="client-jwt"),
    ),
    "standardFlowEnabled": (
        "`true`",
        lambda rep, hub: rep["standardFlowEnabled"] is True,
        lambda rep: rep.update(standardFlowEnabled=False),
    ),
    "redirectUris": (
        "`<hub>/hub/oauth_callback`",
        lambda rep, hub: any(
            fnmatchcase(f"{hub}/hub/oauth_callback", u) for u in rep["redirectUris"]
        ),
        lambda rep: rep.update(redirectUris=["http://localhost:8000/*"]),
    ),
    "attributes.post.logout.redirect.uris": (
        "`<hub>/hub/login`, or `+`",
        lambda rep, hub: (
            f"{hub}/hub/login" in attribute("post.logout.redirect.uris")(rep).split("##")
            or attribute("post.logout.redirect.uris")(rep) == "+"
        ),
        lambda rep: rep["attributes"].update({"post.logout.redirect.uris": ""}),
    ),
    "frontchannelLogout": (
        "`false`",
        lambda rep, hub: rep["frontchannelLogout"] is False,
        lambda rep: rep.update(frontchannelLogout=True),
    ),
    "attributes.backchannel.logout.url": (
        "`<hub>/hub/backchannel-logout`",
        lambda rep, hub: (
            attribute("backchannel.logout.url")(rep) == f"{hub}/hub/backchannel-logout"
        ),
        lambda rep: rep["attributes"].pop("backchannel.logout.url"),
    ),
    "attributes.backchannel.logout.session.required": (
        "`true`",
        lambda rep, hub: attribute("backchannel.logout.session.required")(rep) == "true",
        lambda rep: rep["attributes"].update({"backchannel.logout.session.required": "false"}),
    ),
    "defaultClientScopes": (
        "include `basic` (`sub`), `profile` (`preferred_username`), `email`, `roles`",
        lambda rep, hub: {"basic", "profile", "email", "roles"} <= set(rep["defaultClientScopes"]),
        lambda rep: rep["defaultClientScopes"].remove("basic"),
    ),
    "protocolMappers:oidc-audience-mapper": (
        "`included.client.audience` = `vault-valeria`, `access.token.claim` = `true`",
        lambda rep, hub: (
            mapper(rep, "oidc-audience-mapper").get("included.client.audience") == "vault-valeria"
            and mapper(rep, "oidc-audience-mapper").get("access.token.claim") == "true"
        ),
        lambda rep: mapper(rep, "oidc-audience-mapper").update({"access.token.claim": "false"}),
    ),
    "protocolMappers:oidc-group-membership-mapper": (
        "`claim.name` = `groups`, `access.token.claim` = `true`",
        lambda rep, hub: (
            mapper(rep, "oidc-group-membership-mapper").get("claim.name") == "groups"
            and mapper(rep, "oidc-group-membership-mapper").get("access.token.claim") == "true"
        ),
        lambda rep: mapper(rep, "oidc-group-membership-mapper").update({"claim.name": "teams"}),
    ),
}


def test_the_readme_table_lists_exactly_the_checked_settings():
    rows = readme_rows()
    assert sorted(rows) == sorted(REQUIRED)
    for field, (value, _, _) in REQUIRED.items():
        assert value in rows[field], (field, rows[field])
    assert "26.7.3" in README.read_text() and KEYCLOAK_VERSION == "26.7.3"


def test_the_real_servers_hub_client_has_every_required_setting(real_keycloak, admin, hub_url):
    server = checked(admin.get(f"{real_keycloak.base_url}/admin/serverinfo")).json()
    assert server["systemInfo"]["version"] == KEYCLOAK_VERSION
    rep = hub_client_representation(admin)
    for field, (_, check, _) in REQUIRED.items():
        assert check(rep, hub_url), field
    for field, (_, check, breaks) in REQUIRED.items():
        broken = copy.deepcopy(rep)
        breaks(broken)
        assert not check(broken, hub_url), f"the check of {field} accepts a client without it"


def test_with_front_channel_logout_on_keycloak_sends_no_back_channel_logout(admin, hub_url):
    """Why the table asks for front-channel logout off: with it on, an administrator's
    logout ends the Keycloak session but the hub is never told."""
    name, user_id = new_user(admin)
    with client_changed(admin, frontchannelLogout=True), browser_client() as browser:
        signed_in(browser, hub_url, name)
        checked(admin.post(f"/users/{user_id}/logout"))
        assert sessions_of(admin, user_id) == []
        assert not tokens_gone(hub_url, name)
        assert browser.get(f"{hub_url}/hub/home").url.path == "/hub/home"
