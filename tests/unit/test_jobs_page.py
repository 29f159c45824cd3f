"""The jobs page's static parts: what the server fills in is escaped, once; the HTML needs
nothing a strict CSP would have to allow and labels every field; the script never builds
HTML from strings. (tests/browser/test_jobs.py drives the page itself.)"""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser
from importlib import resources

from valeria_hub.jobs.routers import ui
from valeria_hub.jobs.settings import JobsSettings

WEB = resources.files("valeria_hub.jobs").joinpath("web")


class Inventory(HTMLParser):
    """Tags, attributes, labels and button texts of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.labels: set[str] = set()
        self.buttons: list[str] = []
        self._button: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "label" and a.get("for"):
            self.labels.add(a["for"] or "")
        if tag == "button":
            self._button = []

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None:
            self.buttons.append("".join(self._button).strip())
            self._button = None


def inventory(text: str) -> Inventory:
    parser = Inventory()
    parser.feed(text)
    return parser


def test_server_filled_values_are_escaped_once():
    page = ui.render_page(
        "{xsrf}<b>",
        "/base/services/jobs/",
        "f00d",
        platform='Uni "X" <script>alert(1)</script>',
        default_profile="medium",
        code_max_bytes=1234,
    )
    assert "<script>alert(1)" not in page and "<b>" not in page
    assert "Uni &quot;X&quot; &lt;script&gt;alert(1)&lt;/script&gt;" in page
    # a value that looks like a placeholder is not filled in again
    assert '<span class="navbar-text ms-auto" id="user">{xsrf}&lt;b&gt;</span>' in page
    assert '<meta name="xsrf-token" content="f00d">' in page
    assert '<meta name="default-profile" content="medium">' in page
    assert '<meta name="code-max-bytes" content="1234">' in page
    assert 'href="/base/hub/home"' in page and 'src="/base/hub/logo"' in page
    assert "/base/hub/static/css/style.min.css" in page
    assert not re.search(r"\{[a-z_]+\}", page.replace("{xsrf}&lt;b&gt;", ""))


def test_platform_name_comes_from_the_settings_or_the_hubs_default():
    settings = JobsSettings(
        prefix="/services/jobs/", service_name="jobs", hub_api_url="", hub_api_token=""
    )
    assert ui.platform_name(settings) == "Valeria data-science platform"
    named = dataclasses.replace(settings, platform_name="  Uni X Data  ")
    assert ui.platform_name(named) == "Uni X Data"
    blank = dataclasses.replace(settings, platform_name=" ")
    assert ui.platform_name(blank) == ui.DEFAULT_PLATFORM_NAME


def test_the_hub_gives_the_service_its_platform_name(monkeypatch):
    """PLATFORM_NAME reaches the jobs page through the service's command line."""
    from tests.helpers import DEPLOYMENT_ENV
    from valeria_hub.envconfig import read_settings
    from valeria_hub.jobs.config import JobsServiceApp
    from valeria_hub.jobs.hub_service import service_command

    s = read_settings({**DEPLOYMENT_ENV, "PLATFORM_NAME": "Uni X <Data> Lab"})
    app = JobsServiceApp()
    app.initialize(service_command(s, "python")[3:])
    assert app.settings().platform_name == "Uni X <Data> Lab"
    page = ui.render_page("alice", "/services/jobs/", platform=ui.platform_name(app.settings()))
    assert "Uni X &lt;Data&gt; Lab" in page and "<Data>" not in page


def test_the_csp_allows_no_inline_code():
    csp = ui.CSP
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe" not in csp and "frame-ancestors 'none'" in csp


def test_the_page_has_no_inline_code_and_labels_every_field():
    found = inventory(ui.render_page("alice", "/services/jobs/", "00"))
    for tag, attrs in found.tags:
        assert not (tag == "script" and not attrs.get("src")), "inline script"
        assert tag != "style" and "style" not in attrs, (tag, attrs)
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
    fields = [a.get("id") for t, a in found.tags if t in ("input", "select", "textarea")]
    assert fields and all(f in found.labels for f in fields), (fields, found.labels)
    assert found.buttons and all(found.buttons), found.buttons


def test_the_script_never_turns_strings_into_html_or_code():
    script = WEB.joinpath("app.js").read_text(encoding="utf-8")
    risky = ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("]
    risky += ["new Function", 'setTimeout("', "setInterval("]  # (polls chain setTimeout)
    for word in risky:
        assert word not in script, word
    assert "textContent" in script
