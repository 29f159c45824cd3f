"""The hub's own pages as a new user meets them, through the real hub (repository config)
and the stand-ins: the refusal page of a person who is not provisioned (after the form and
on the progress page), its one log line, the README's quote of it, page titles, the ways
on from error pages, and the logout's confirmation.

The platform's name and support contact carry HTML-special characters: every page must
show them escaped.
"""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.auth_hub import login_form_action
from tests.helpers.e2e import (
    browser,
    progress_events,
    running_hub,
    running_stack,
    stack_objects,
)
from valeria_hub.vault import REFUSALS

pytestmark = pytest.mark.e2e

PLATFORM = 'Lab <Test> & "Co"'
SUPPORT = "Research desk <help@uni.example> & co"
README = Path(__file__).resolve().parents[2] / "README.md"
NOT_PROVISIONED = REFUSALS["not_provisioned"].message
HEADING = "Your account is not set up for notebooks yet"

ENTRY = re.compile(r"^\[(?P<level>[DIWEC]) ")
FAILURE_WORDS = re.compile(r"refused|fail|error|not starting|exception", re.I)
# JupyterHub's request log: "403 POST /hub/spawn (carol@127.0.0.1) 12.34ms"
REQUEST = re.compile(r"\] \d{3} [A-Z]+ \S+ \([^)]*\) [\d.]+ms$")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hub-pages")
    with (
        running_stack(tmp) as stack,
        running_hub(stack, tmp / "hub", PLATFORM_NAME=PLATFORM, SUPPORT_CONTACT=SUPPORT) as hub,
    ):
        yield stack, hub


def post_form(client: httpx.Client, hub, **kwargs) -> httpx.Response:
    """Submit the spawn form (default flavour) as a browser does: the form's action
    carries the XSRF token in its query."""
    xsrf = client.cookies.get("_xsrf", path="/hub/") or ""
    return client.post(f"{hub.public_url}/hub/spawn", params={"_xsrf": xsrf}, data={}, **kwargs)


def title(page: str) -> str:
    match = re.search(r"<title>(.*?)</title>", page, re.S)
    assert match, "the page has no <title>"
    return html.unescape(" ".join(match.group(1).split()))


def visible_text(page: str) -> str:
    """The page's text as a person reads it: no scripts, tags or entities, one space."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def log_offset(hub) -> int:
    return len(hub.log_text())


def refusal_lines(hub, offset: int, wait: float = 2.0) -> tuple[list[str], str]:
    """The hub's warning and error lines about a failed spawn since ``offset`` (request
    lines aside), after a moment for late lines, and the log text itself."""
    time.sleep(wait)
    text = hub.log_text()[offset:]
    lines = [
        line
        for line in text.splitlines()
        if (m := ENTRY.match(line))
        and m["level"] in "WEC"
        and not REQUEST.search(line)
        and FAILURE_WORDS.search(line)
        and ("carol" in line or "spawn" in line.lower() or NOT_PROVISIONED in line)
    ]
    return lines, text


def assert_refusal_page(resp: httpx.Response) -> None:
    """The platform's refusal page for a person without a storage identity."""
    assert resp.status_code == 403, (resp.status_code, resp.text[:500])
    page = resp.text
    text = visible_text(page)
    assert HEADING in text and NOT_PROVISIONED in text
    assert "Once support has set up your account" in text  # what to do
    assert f"Support: {SUPPORT}" in text
    assert html.escape(SUPPORT, quote=False) in page and "<help@uni.example>" not in page
    assert 'id="valeria-home-link" class="btn btn-outline-secondary" href="/hub/home"' in page
    assert 'id="valeria-logout-link" class="btn btn-outline-secondary" href="/hub/logout"' in page
    assert 'id="spawn_form"' not in page and "spawn-error-msg" not in page  # not the form
    assert "Spawn failed" not in text
    assert title(page) == f"{HEADING} – {PLATFORM}"


def test_a_person_not_provisioned_gets_the_refusal_page_after_the_form(env):
    stack, hub = env
    client = browser(hub, "carol")
    before = {r: len(stack_objects(stack, r)) for r in ("v1/pods", "v1/secrets")}
    offset = log_offset(hub)
    resp = post_form(client, hub, follow_redirects=False)
    # the refusal comes within the second JupyterHub waits: the answer is the page itself
    assert resp.status_code != 302, "the refusal took longer than JupyterHub waits"
    assert_refusal_page(resp)
    # and so is the progress page, where a reload (or a later visit) lands
    assert_refusal_page(client.get(f"{hub.public_url}/hub/spawn-pending/carol"))
    lines, text = refusal_lines(hub, offset)
    assert "Traceback" not in text
    assert len(lines) == 1, lines
    assert "carol: spawn refused (not_provisioned, HTTP 403): no " in lines[0]
    assert lines[0].endswith("stored in Vault for this user")
    assert lines[0].startswith("[W ")
    after = {r: len(stack_objects(stack, r)) for r in ("v1/pods", "v1/secrets")}
    assert after == before


def test_a_slow_refusal_reaches_the_refusal_page_through_the_progress_page(env):
    """A refusal after JupyterHub's one-second wait: the form answers with the progress
    page, whose failed event carries the marker that makes the page reload into the
    refusal page (the reload itself is the browser test's)."""
    stack, hub = env
    client = browser(hub, "carol")
    slow = stack.vault.faults.inject("/v1/auth/jwt/login", delay=2.5, times=1)
    try:
        offset = log_offset(hub)
        resp = post_form(client, hub, follow_redirects=False)
        assert resp.status_code == 302, resp.text[:300]
        assert resp.headers["Location"].startswith("/hub/spawn-pending/carol")
        pending = client.get(f"{hub.public_url}/hub/spawn-pending/carol")
        assert pending.status_code == 200 and 'id="progress-message"' in pending.text
        assert 'querySelector(".valeria-refusal")' in pending.text
        assert title(pending.text) == PLATFORM
        events = progress_events(client, hub, "carol")
    finally:
        stack.vault.faults.remove(slow)
    assert slow.hits == 1
    failed = events[-1]
    assert failed.get("failed") and NOT_PROVISIONED in failed["message"]
    assert 'class="valeria-refusal" data-reason="not_provisioned"' in failed["html_message"]
    assert_refusal_page(client.get(f"{hub.public_url}/hub/spawn-pending/carol"))
    lines, text = refusal_lines(hub, offset)
    assert "Traceback" not in text
    assert len(lines) == 1, lines
    assert "carol: spawn refused (not_provisioned, HTTP 403)" in lines[0]


def test_vault_down_gives_the_503_refusal_page_with_a_way_to_retry(env):
    stack, hub = env
    client = browser(hub, "alice")
    down = stack.vault.faults.inject("/v1/auth/jwt/login", status=503)
    try:
        offset = log_offset(hub)
        post_form(client, hub)
        assert progress_events(client, hub, "alice")[-1].get("failed")
        page = client.get(f"{hub.public_url}/hub/spawn-pending/alice")
    finally:
        stack.vault.faults.remove(down)
    assert page.status_code == 503, page.text[:300]
    text = visible_text(page.text)
    assert "The platform's storage service is unavailable" in text
    assert REFUSALS["unavailable"].message in text and f"Support: {SUPPORT}" in text
    assert 'id="valeria-retry" role="button" class="btn btn-lg btn-primary" href="/hub/spawn' in (
        page.text
    )
    assert 'id="valeria-logout-link"' in page.text
    lines, log = refusal_lines(hub, offset)
    assert "Traceback" not in log
    assert [line for line in lines if "alice" in line and "refused" in line], lines
    assert len([line for line in lines if "alice" in line]) == 1, lines


def test_the_readme_quotes_exactly_what_carol_sees(env):
    stack, hub = env
    readme = README.read_text()
    bullet = re.search(r"^- Sign in as `carol`.*?(?=^- |^\n)", readme, re.S | re.M)
    assert bullet, "the README's demo list has no bullet for carol"
    said = " ".join(bullet.group(0).split())
    demo = stack.hub_environment(public_url="http://127.0.0.1:1", hub_port=1, proxy_api_port=1)
    assert f"`{demo['SUPPORT_CONTACT']}` in the demo" in said
    quotes = re.findall(r'"([^"]+)"', said)
    assert len(quotes) >= 2, quotes  # the heading and the message
    client = browser(hub, "carol")
    page = post_form(client, hub, follow_redirects=False)
    assert_refusal_page(page)
    text = visible_text(page.text)
    for quote in quotes:
        assert quote in text, f"the README quotes {quote!r}, the page says: {text}"
    assert NOT_PROVISIONED in quotes


def test_every_hub_page_is_titled_with_the_platform_name(env):
    _, hub = env
    pages = {"/hub/login": httpx.get(f"{hub.public_url}/hub/login", timeout=30)}
    bob = browser(hub, "bob")
    for path in ("/hub/home", "/hub/token", "/hub/spawn", "/hub/spawn-pending/bob", "/hub/nope"):
        pages[path] = bob.get(f"{hub.public_url}{path}")
    admin = browser(hub, "admin")
    pages["/hub/admin"] = admin.get(f"{hub.public_url}/hub/admin")
    assert pages["/hub/nope"].status_code == 404
    assert 'id="valeria-flavours"' in pages["/hub/spawn"].text
    for path, resp in pages.items():
        assert resp.status_code in (200, 404), (path, resp.status_code)
        assert title(resp.text) == PLATFORM, (path, title(resp.text))
        assert "JupyterHub" not in title(resp.text)
        assert "<Test>" not in resp.text, path  # escaped everywhere
        assert f'alt="{html.escape(PLATFORM)}"' in resp.text.replace("&#34;", "&quot;"), path
    assert PLATFORM in visible_text(pages["/hub/login"].text)


def test_error_pages_lead_home_and_to_logging_out(env):
    _, hub = env
    carol = browser(hub, "carol")
    forbidden = carol.get(f"{hub.public_url}/hub/admin")  # not an admin
    missing = carol.get(f"{hub.public_url}/hub/no-such-page")
    anonymous = httpx.get(f"{hub.public_url}/hub/no-such-page", timeout=30)
    for resp, status in ((forbidden, 403), (missing, 404), (anonymous, 404)):
        assert resp.status_code == status, resp.text[:300]
        assert 'id="valeria-home-link" class="btn btn-outline-secondary" href="/hub/home"' in (
            resp.text
        )
        assert 'id="valeria-logout-link" class="btn btn-outline-secondary" href="/hub/logout"' in (
            resp.text
        )
        assert f"Need help? Contact {SUPPORT}." in visible_text(resp.text)
        assert "<help@uni.example>" not in resp.text
        assert title(resp.text) == PLATFORM
    # the logout link of the 403 page works: the person can sign in as someone else
    out = carol.get(f"{hub.public_url}/hub/logout")
    assert "You are logged out" in visible_text(out.text)
    assert carol.get(f"{hub.public_url}/hub/home").url.path == "/hub/login"


def test_logging_out_ends_on_a_page_that_says_so(env):
    stack, hub = env
    client = browser(hub, "bob")
    kc = stack.keycloak
    sessions = len([s for s in kc.call(kc.list_sessions) if s["username"] == "bob"])
    resp = client.get(f"{hub.public_url}/hub/logout")
    # the RP-initiated logout went to Keycloak with the ID token and came back to the hub
    hops = [str(r.url) for r in resp.history]
    assert any("/protocol/openid-connect/logout" in h and "id_token_hint" in h for h in hops)
    assert resp.status_code == 200 and resp.url.path == "/hub/login"
    text = visible_text(resp.text)
    assert "You are logged out" in text and f"You have logged out of {PLATFORM}." in text
    assert 'id="valeria-login-again"' in resp.text and 'href="/hub/oauth_login"' in resp.text
    assert 'id="valeria-sign-in"' not in resp.text  # not the login form
    assert title(resp.text) == f"Logged out – {PLATFORM}"
    assert resp.headers.get("Cache-Control") == "no-store"
    # this browser's Keycloak session ended (other tests' sessions of bob remain)
    assert len([s for s in kc.call(kc.list_sessions) if s["username"] == "bob"]) == sessions - 1
    # once: the next visit of the login page is the login page, and home needs a login
    again = client.get(f"{hub.public_url}/hub/login")
    assert 'id="valeria-sign-in"' in again.text and "You are logged out" not in again.text
    assert client.get(f"{hub.public_url}/hub/home").url.path == "/hub/login"
    # "Log in again" asks Keycloak for a password
    form = client.get(f"{hub.public_url}/hub/oauth_login")
    assert login_form_action(form.text) is not None
