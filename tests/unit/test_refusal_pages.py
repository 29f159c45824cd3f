"""The package's page templates rendered as JupyterHub renders them (its loader, its
templates, autoescape), and the log filter that keeps an expected refusal to one line.

Every refusal reason gets the platform's page with its message, what to do, the support
contact and the ways on; the end-to-end versions are tests/e2e/test_hub_pages.py.
"""

from __future__ import annotations

import html
import logging
import os
import re
import sys
from types import SimpleNamespace

import pytest
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from jupyterhub._data import DATA_FILES_PATH

from valeria_hub.spawner import (
    REFUSAL_LOG_MARK,
    STATUS_BY_REASON,
    RefusalLogFilter,
    SpawnRefused,
)
from valeria_hub.templates import TEMPLATES_DIR
from valeria_hub.vault import REFUSALS

PLATFORM = "Lab <raw-name>& Co"
SUPPORT = "desk <help@uni.example>"
HUB_TEMPLATES = os.path.join(DATA_FILES_PATH, "templates")


@pytest.fixture(scope="module")
def env() -> Environment:
    """JupyterHub's template environment with the package's templates first (as
    jupyterhub_config.py configures it, without a deployment folder)."""
    loader = ChoiceLoader(
        [
            PrefixLoader({"templates": FileSystemLoader([HUB_TEMPLATES])}, "/"),
            FileSystemLoader(
                [TEMPLATES_DIR, os.path.dirname(os.path.dirname(TEMPLATES_DIR)), HUB_TEMPLATES]
            ),
        ]
    )
    return Environment(loader=loader, autoescape=True)


def namespace(**extra) -> dict:
    """What BaseHandler.template_namespace gives every page, with the config's
    template_vars; a signed-in user by default."""
    user = SimpleNamespace(name="carol", json_escaped_name="carol", spawner=None)
    ns = {
        "base_url": "/hub/",
        "prefix": "/",
        "user": user,
        "login_url": "/hub/login",
        "logout_url": "/hub/logout",
        "login_service": "Uni SSO",
        "static_url": lambda path, **kw: f"/hub/static/{path}",
        "services": [],
        "parsed_scopes": set(),
        "expanded_scopes": set(),
        "xsrf": "x",
        "xsrf_token": "x",
        "platform_name": PLATFORM,
        "support_contact": SUPPORT,
    }
    ns.update(extra)
    return ns


def text_of(page: str) -> str:
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def title_of(page: str) -> str:
    return html.unescape(" ".join(re.search(r"<title>(.*?)</title>", page, re.S)[1].split()))


def failed_page(env: Environment, exc: BaseException) -> str:
    """/hub/spawn-pending after a failed spawn, as SpawnPendingHandler renders it."""
    return env.get_template("not_running.html").render(
        namespace(
            failed=True,
            exception=exc,
            failed_message=getattr(exc, "jupyterhub_message", None),
            failed_html_message=getattr(exc, "jupyterhub_html_message", None),
            server_name="",
            spawn_url="/hub/spawn/carol",
        )
    )


def assert_ways_on(page: str) -> None:
    assert 'id="valeria-home-link" class="btn btn-outline-secondary" href="/hub/home"' in page
    assert 'id="valeria-logout-link" class="btn btn-outline-secondary" href="/hub/logout"' in page


EXPECTED = {
    # reason: (status, heading, primary action's element id or None)
    "not_provisioned": (403, "Your account is not set up for notebooks yet", None),
    "denied": (403, "Your storage identity could not be read", None),
    "malformed": (503, "Your storage identity is incomplete", None),
    "unavailable": (503, "The platform's storage service is unavailable", "valeria-retry"),
    "login_rejected": (401, "Please log in again", "valeria-relogin"),
    "login_expired": (401, "Please log in again", "valeria-relogin"),
    "storage": (503, "Your server could not be started", "valeria-retry"),
}


@pytest.mark.parametrize("reason", sorted(EXPECTED))
def test_each_refusal_gets_the_platforms_page(env, reason):
    status, heading, action = EXPECTED[reason]
    message = REFUSALS[reason].message if reason in REFUSALS else f"Stopped <{reason}> 100%"
    exc = SpawnRefused(reason, message, "detail <for> support")
    assert exc.status_code == status
    page = failed_page(env, exc)
    text = text_of(page)
    assert heading in text and message in text and "detail <for> support" in text
    assert f"Support: {SUPPORT}" in text
    assert "Spawn failed" not in text and "Relaunch" not in text
    assert title_of(page) == f"{heading} – {PLATFORM}"
    assert_ways_on(page)
    assert "<help@uni.example>" not in page and "<for>" not in page
    assert "<raw-name>" not in page
    ids = {"valeria-retry", "valeria-relogin"}
    for other in ids - {action}:
        assert f'id="{other}"' not in page
    if action == "valeria-retry":
        assert (
            'id="valeria-retry" role="button" class="btn btn-lg btn-primary" '
            'href="/hub/spawn/carol"' in page
        )
    if action == "valeria-relogin":
        assert (
            'id="valeria-relogin" role="button" class="btn btn-lg btn-primary" href="/hub/logout"'
            in page
        )


def test_every_reason_the_spawner_raises_has_a_status():
    assert set(REFUSALS) | set(STATUS_BY_REASON) <= set(EXPECTED) | {
        "kubernetes",
        "invalid_options",
        "flavour_config",
    }
    assert SpawnRefused("kubernetes", "x").status_code == 503
    assert SpawnRefused("invalid_options", "x").status_code == 400


def test_the_page_survives_jupyterhub_rewriting_the_reason(env):
    """JupyterHub 5 sets ``reason = "error"`` on a failed spawn's exception: the page
    reads ``refusal_reason``, which nothing rewrites."""
    exc = SpawnRefused("not_provisioned", REFUSALS["not_provisioned"].message)
    exc.reason = "error"
    assert "Your account is not set up for notebooks yet" in text_of(failed_page(env, exc))


def test_without_a_support_contact_the_page_still_says_whom_to_ask(env):
    exc = SpawnRefused("not_provisioned", REFUSALS["not_provisioned"].message)
    page = env.get_template("not_running.html").render(
        namespace(failed=True, exception=exc, spawn_url="/hub/spawn", support_contact="")
    )
    assert "Ask your platform's support team for help." in text_of(page)


def test_other_spawn_failures_keep_jupyterhubs_page_with_the_ways_on(env):
    exc = RuntimeError("boom")
    page = failed_page(env, exc)
    text = text_of(page)
    assert "Spawn failed" in text and "Relaunch" in text
    assert "valeria-refusal-page" not in page
    assert_ways_on(page)
    not_running = env.get_template("not_running.html").render(
        namespace(failed=False, spawn_url="/hub/spawn/carol", server_name="")
    )
    assert "Server not running" in text_of(not_running) and 'id="start"' in not_running
    assert_ways_on(not_running)
    assert title_of(not_running) == PLATFORM


def spawn_form(env: Environment, spawner, error_message=None) -> str:
    """SpawnHandler._render_form's page after a form submission."""
    return env.get_template("spawn.html").render(
        namespace(
            for_user=SimpleNamespace(name="carol"),
            spawner=spawner,
            spawner_options_form='<div id="valeria-flavours"></div>',
            error_message=error_message,
            html_error_message=None,
            url="/hub/spawn?_xsrf=x",
        )
    )


def test_after_the_form_a_refusal_is_the_refusal_page_not_the_form(env):
    exc = SpawnRefused("not_provisioned", REFUSALS["not_provisioned"].message)
    page = spawn_form(env, SimpleNamespace(refusal=exc), exc.jupyterhub_message)
    text = text_of(page)
    assert "Your account is not set up for notebooks yet" in text
    assert f"Support: {SUPPORT}" in text
    assert 'id="spawn_form"' not in page and "spawn-error-msg" not in page
    assert_ways_on(page)


def test_the_form_stays_for_errors_that_are_no_refusal(env):
    """A wrong form value (400 from run_options_from_form) is fixed on the form; an older
    refusal of the same spawner does not replace it; other spawners have no refusal."""
    old = SpawnRefused("unavailable", REFUSALS["unavailable"].message)
    for spawner in (SimpleNamespace(refusal=old), SimpleNamespace(), None):
        page = spawn_form(env, spawner, "size: '64' is not one of small")
        assert 'id="spawn_form"' in page and "spawn-error-msg" in page
        assert "valeria-refusal-page" not in page
    plain = spawn_form(env, SimpleNamespace(refusal=None))
    assert 'id="spawn_form"' in plain and 'id="valeria-flavours"' in plain
    assert title_of(plain) == PLATFORM


@pytest.mark.parametrize("status", [403, 404, 500])
def test_error_pages_offer_home_logout_and_support(env, status):
    name = "404.html" if status == 404 else "error.html"
    page = env.get_template(name).render(
        namespace(status_code=status, status_message="Forbidden", message="no <way>")
    )
    assert_ways_on(page)
    assert f"Need help? Contact {SUPPORT}." in text_of(page)
    assert title_of(page) == PLATFORM and "<help@uni.example>" not in page


def test_every_page_is_titled_and_branded_with_the_platform(env):
    for name in ("home.html", "token.html", "login.html", "logout.html", "spawn_pending.html"):
        ns = namespace(
            spawner=None,
            progress_url="/p",
            authenticator_login_url="/hub/oauth_login",
            login_error=None,
            authenticator=None,
            custom_html="",
            default_server=SimpleNamespace(active=False, ready=False, pending=None),
            spawners={},
            named_server_limit_per_user=0,
            allow_named_servers=False,
            url_path_join=lambda *a: "/".join(a),
        )
        try:
            page = env.get_template(name).render(ns)
        except Exception as e:  # noqa: BLE001 - a page needing more than this test gives
            pytest.fail(f"{name}: {e!r}")
        assert PLATFORM in title_of(page), name
        assert "JupyterHub" not in title_of(page), name
        assert 'alt="Lab &lt;raw-name&gt;&amp; Co"' in page, name
        assert "<raw-name>" not in page, name


def test_the_logout_page_confirms_and_offers_to_log_in_again(env):
    page = env.get_template("logout.html").render(
        namespace(user=None, login_again_url="/hub/oauth_login")
    )
    text = text_of(page)
    assert "You are logged out" in text and f"You have logged out of {PLATFORM}." in text
    assert 'id="valeria-login-again"' in page and 'href="/hub/oauth_login"' in page
    assert title_of(page) == f"Logged out – {PLATFORM}"
    # JupyterHub's own LogoutHandler (auto_login) gives no login_again_url
    own = env.get_template("logout.html").render(namespace(user=None))
    assert 'href="/hub/login"' in own


def test_the_spawn_pending_page_reloads_into_the_refusal_page(env):
    exc = SpawnRefused("not_provisioned", "Not <yet>")
    assert exc.jupyterhub_html_message == (
        '<span class="valeria-refusal" data-reason="not_provisioned">Not &lt;yet&gt;</span>'
    )
    detailed = SpawnRefused("storage", "No", "ask <desk>")
    assert detailed.jupyterhub_html_message.endswith(
        '<span class="valeria-detail">ask &lt;desk&gt;</span>'
    )
    page = env.get_template("spawn_pending.html").render(
        namespace(spawner=None, progress_url="/hub/api/users/carol/server/progress")
    )
    assert 'box.querySelector(".valeria-refusal")' in page and "window.location.reload()" in page


# -- the log ----------------------------------------------------------------------------
def record(msg, *args, level=logging.ERROR, exc=None, **extra) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    rec = logging.LogRecord("JupyterHub", level, __file__, 1, msg, args, exc_info)
    rec.__dict__.update(extra)
    return rec


def test_the_log_filter_keeps_one_line_per_refusal_and_every_real_error():
    quiet = RefusalLogFilter()
    exc = SpawnRefused("not_provisioned", REFUSALS["not_provisioned"].message)
    quiet.live.add(exc)
    try:
        raise exc
    except SpawnRefused:
        raised = sys.exc_info()[1]
    # JupyterHub's reports of it: the traceback after the form, the spawn-pending page's
    # line, its f-string lines, asyncio's "Task exception was never retrieved"
    assert not quiet.filter(record("Failed to spawn single-user server with form", exc=raised))
    assert not quiet.filter(record("Previous spawn for %s failed: %s", "carol", exc))
    assert not quiet.filter(record(f"Not starting carol's server : {exc}"))
    assert not quiet.filter(record(f"Error starting server carol: {exc}"))
    assert not quiet.filter(record("Task exception was never retrieved", exc=raised))
    # the spawner's own line stays, and so does everything else
    assert quiet.filter(
        record("%s: spawn refused (%s)", "carol", "not_provisioned", **{REFUSAL_LOG_MARK: True})
    )
    try:
        raise RuntimeError("boom")
    except RuntimeError as e:
        assert quiet.filter(record("Unhandled error starting carol's server: boom", exc=e))
    assert quiet.filter(record("Error starting server carol: HTTP 500: Internal"))
    assert quiet.filter(record(f"debug about {exc}", level=logging.DEBUG))


def test_the_refusal_is_logged_without_secrets_or_markup():
    exc = SpawnRefused(
        "kubernetes", "Could not store your S3 credentials", log_detail="could not store s3-x"
    )
    assert exc.log_detail == "could not store s3-x"
    assert str(exc) == "Could not store your S3 credentials"
    assert SpawnRefused("unavailable", "down", "Vault answered HTTP 503").log_detail == (
        "Vault answered HTTP 503"
    )
    assert SpawnRefused("internal", "try again").log_detail == "try again"
