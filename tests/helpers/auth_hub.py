"""Test helpers: the Keycloak stand-in plus a real JupyterHub using KeycloakAuthenticator,
and an HTTP login through Keycloak's login form."""

from __future__ import annotations

import html
import re
import secrets
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from devstack.hub import HubProcess, free_port
from devstack.keycloak import KeycloakStandIn

CLIENT_SECRET = "demo-jupyterhub-secret"
SERVICE_TOKEN = secrets.token_hex(16)


def hub_config(kc_issuer: str, hub_url: str, workdir: Path, extra: str = "") -> Path:
    """A jupyterhub_config.py for the tests: KeycloakAuthenticator, no spawning."""
    proxy_api = free_port()
    hub_port = free_port()
    text = f"""
        c.JupyterHub.authenticator_class = "valeria-keycloak"
        c.KeycloakAuthenticator.realm_url = {kc_issuer!r}
        c.KeycloakAuthenticator.client_id = "jupyterhub"
        c.KeycloakAuthenticator.client_secret = {CLIENT_SECRET!r}
        c.KeycloakAuthenticator.oauth_callback_url = {hub_url + "/hub/oauth_callback"!r}
        c.KeycloakAuthenticator.allowed_roles = {{"hub-user"}}
        c.KeycloakAuthenticator.admin_roles = {{"hub-admin"}}
        c.KeycloakAuthenticator.refresh_margin = 3
        c.KeycloakAuthenticator.http_timeout = 3
        c.KeycloakAuthenticator.jwks_refetch_interval = 1.0
        c.Authenticator.auth_refresh_age = 1
        c.JupyterHub.bind_url = {hub_url!r}
        c.JupyterHub.hub_ip = "127.0.0.1"
        c.JupyterHub.hub_port = {hub_port}
        c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api}"
        c.ConfigurableHTTPProxy.pid_file = {str(workdir / "proxy.pid")!r}
        c.JupyterHub.db_url = "sqlite:///{workdir / "hub.sqlite"}"
        c.JupyterHub.cookie_secret_file = {str(workdir / "cookie_secret")!r}
        c.JupyterHub.pid_file = {str(workdir / "hub.pid")!r}
        c.JupyterHub.default_url = "/hub/home"
        c.JupyterHub.spawner_class = "simple"
        c.JupyterHub.cleanup_servers = True
        c.JupyterHub.services = [{{"name": "tester", "api_token": {SERVICE_TOKEN!r}}}]
        c.JupyterHub.load_roles = [{{
            "name": "tester",
            "scopes": ["admin:users", "admin:auth_state", "list:users", "read:groups"],
            "services": ["tester"],
        }}]
    """
    path = workdir / "jupyterhub_config.py"
    path.write_text(textwrap.dedent(text) + textwrap.dedent(extra))
    return path


@contextmanager
def keycloak_and_hub(workdir: Path, *, crypt_key: bool = True) -> Iterator[tuple]:
    """A Keycloak stand-in (own thread) and a hub process wired to it; both stopped after."""
    kc = KeycloakStandIn()
    with kc.serve_in_thread():
        hub_url = f"http://127.0.0.1:{free_port()}"
        kc.call(
            kc.update_client,
            "jupyterhub",
            redirect_uris=[f"{hub_url}/*"],
            backchannel_logout_url=f"{hub_url}/hub/backchannel-logout",
        )
        config = hub_config(kc.issuer, hub_url, workdir)
        # an empty key counts as no key (JupyterHub ignores empty entries)
        env = {"JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32) if crypt_key else ""}
        hub = HubProcess(env, workdir, config=config, public_url=hub_url)
        hub.start(timeout=60)
        try:
            yield kc, hub
        finally:
            hub.stop()


_FORM_ACTION = re.compile(r'<form id="kc-form-login"[^>]*?action="([^"]+)"', re.S)


def login_form_action(page: str) -> str | None:
    match = _FORM_ACTION.search(page)
    return html.unescape(match.group(1)) if match else None


def login(client: httpx.Client, hub_url: str, username: str, password: str | None = None):
    """Log in through /hub/oauth_login and Keycloak's form; return the final response."""
    resp = client.get(f"{hub_url}/hub/oauth_login", params={"next": "/hub/home"})
    action = login_form_action(resp.text)
    if action is None:  # an SSO session already exists: Keycloak sent us straight back
        return resp
    return client.post(action, data={"username": username, "password": password or username})


def hub_client(**kwargs) -> httpx.Client:
    return httpx.Client(follow_redirects=True, timeout=15, **kwargs)


def api_user(hub_url: str, name: str) -> dict:
    resp = httpx.get(
        f"{hub_url}/hub/api/users/{name}",
        headers={"Authorization": f"token {SERVICE_TOKEN}"},
        timeout=10,
    )
    resp.raise_for_status()
    return resp.json()
