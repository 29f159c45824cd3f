"""HTML pages of the Keycloak stand-in, shaped like Keycloak's login theme.

Browser-driving tests and scrapers find the same ids they find on a real Keycloak:
``kc-form-login`` with ``username``/``password``/``login``, ``input-error`` for a bad
password, ``kc-error-message`` on error pages, ``kc-logout-confirm`` on the logout
confirmation.
"""

from __future__ import annotations

from html import escape

from aiohttp import web

_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex, nofollow">
<title>{title}</title></head>
<body class="login-pf"><div class="login-pf-page">
<div id="kc-header"><div id="kc-header-wrapper">{realm}</div></div>
<div class="card-pf"><header class="login-pf-header">
<h1 id="kc-page-title">{heading}</h1></header><div id="kc-content"><div id="kc-content-wrapper">
"""
_TAIL = "</div></div></div></div></body></html>\n"


def _page(realm: str, title: str, heading: str, body: str, status: int = 200) -> web.Response:
    html = _HEAD.format(title=escape(title), realm=escape(realm.upper()), heading=escape(heading))
    return web.Response(
        status=status,
        text=html + body + _TAIL,
        content_type="text/html",
        headers={"Cache-Control": "no-store, must-revalidate, max-age=0"},
    )


def login_page(
    realm: str,
    action: str,
    username: str = "",
    field_error: str | None = None,
    alert: str | None = None,
) -> web.Response:
    """The username/password form; ``field_error`` marks the inputs, ``alert`` is a banner."""
    banner = ""
    if alert:
        banner = (
            '<div class="alert-error pf-c-alert pf-m-inline pf-m-danger">'
            f'<span class="kc-feedback-text">{escape(alert)}</span></div>\n'
        )
    invalid = ' aria-invalid="true"' if field_error else ""
    error = (
        f'<span id="input-error" class="pf-c-form__helper-text pf-m-error required '
        f'kc-feedback-text" aria-live="polite">{escape(field_error)}</span>\n'
        if field_error
        else ""
    )
    body = f"""{banner}<div id="kc-form"><div id="kc-form-wrapper">
<form id="kc-form-login" onsubmit="login.disabled = true; return true;"
 action="{escape(action)}" method="post">
<div class="form-group"><label for="username" class="pf-c-form__label">Username or email</label>
<input tabindex="1" id="username" class="pf-c-form-control" name="username"
 value="{escape(username)}" type="text" autofocus autocomplete="off"{invalid}/>
{error}</div>
<div class="form-group"><label for="password" class="pf-c-form__label">Password</label>
<input tabindex="2" id="password" class="pf-c-form-control" name="password" type="password"
 autocomplete="off"{invalid}/></div>
<div id="kc-form-buttons" class="form-group">
<input type="hidden" id="id-hidden-input" name="credentialId"/>
<input tabindex="4" class="pf-c-button pf-m-primary pf-m-block btn-lg" name="login"
 id="kc-login" type="submit" value="Sign In"/></div>
</form></div></div>
"""
    return _page(realm, f"Sign in to {realm}", "Sign in to your account", body)


def error_page(realm: str, message: str, status: int = 400) -> web.Response:
    body = f'<div id="kc-error-message">\n<p class="instruction">{escape(message)}</p>\n</div>\n'
    return _page(realm, "We are sorry...", "We are sorry...", body, status=status)


def info_page(realm: str, message: str, heading: str) -> web.Response:
    body = f'<div id="kc-info-message">\n<p class="instruction">{escape(message)}</p>\n</div>\n'
    return _page(realm, heading, heading, body)


def logout_confirm_page(realm: str, action: str, session_code: str) -> web.Response:
    body = f"""<div id="kc-logout-confirm" class="content-area">
<p class="instruction">Do you want to log out?</p>
<form class="form-actions" action="{escape(action)}" method="POST">
<input type="hidden" name="session_code" value="{escape(session_code)}">
<input tabindex="4" class="pf-c-button pf-m-primary" name="confirmLogout" id="kc-logout"
 type="submit" value="Logout"/>
</form></div>
"""
    return _page(realm, "Logging out", "Logging out", body)
