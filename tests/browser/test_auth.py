"""A person logs in with headless Chromium: hub -> Keycloak login form -> hub home page."""

from __future__ import annotations

import pytest

from tests.helpers.auth_hub import keycloak_and_hub
from tests.helpers.browser import launch, require_chromium

pytestmark = pytest.mark.browser


def test_browser_login_lands_on_hub_home(tmp_path):
    require_chromium()
    from playwright.sync_api import sync_playwright

    with keycloak_and_hub(tmp_path) as (kc, hub), sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.goto(f"{hub.public_url}/hub/login")
            page.click("text=Sign in with Keycloak")
            page.wait_for_selector("#kc-form-login")
            assert page.url.startswith(kc.issuer)
            page.fill("#username", "alice")
            page.fill("#password", "wrong")
            page.click("#kc-login")
            assert "Invalid username or password" in page.inner_text("#input-error")
            page.fill("#username", "alice")
            page.fill("#password", "alice")
            page.click("#kc-login")
            page.wait_for_url(f"{hub.public_url}/hub/home")
            assert "alice" in page.content()
            assert page.locator("#start").count() == 1  # the home page's server button
        finally:
            browser.close()
