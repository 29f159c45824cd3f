"""In Chromium: a person picks a flavour on the spawn form and lands in JupyterLab; a
person who is not provisioned gets the platform's refusal page (after the form, and from
the progress page, which reloads into it) and logs out from it to a confirmation."""

from __future__ import annotations

import pytest

from tests.helpers.browser import launch, require_chromium
from tests.helpers.e2e import notebook_processes, running_hub, running_stack, stack_objects

pytestmark = pytest.mark.browser


def test_pick_a_flavour_and_open_the_notebook(tmp_path):
    require_chromium()
    from playwright.sync_api import sync_playwright

    with (
        running_stack(tmp_path) as stack,
        running_hub(stack, tmp_path / "hub") as hub,
        sync_playwright() as pw,
    ):
        browser = launch(pw)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{hub.public_url}/hub/login")
            assert "Valeria data-science platform" in page.content()
            page.click("#valeria-sign-in")
            page.wait_for_selector("#kc-form-login")
            page.fill("#username", "alice")
            page.fill("#password", "alice")
            page.click("#kc-login")
            page.wait_for_url(f"{hub.public_url}/hub/**")
            page.goto(f"{hub.public_url}/hub/spawn")
            page.wait_for_selector("#valeria-flavours")
            page.check("#profile-scipy")
            page.select_option("#profile-option-scipy--size", "medium")
            page.click("input[type=submit], button[type=submit]")
            page.wait_for_url(f"{hub.public_url}/user/alice/lab**", timeout=120_000)
            page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)
            assert "JupyterLab" in page.title()
        finally:
            browser.close()
        pod = next(
            p
            for p in stack_objects(stack, "v1/pods", "default")
            if p["metadata"]["name"] == "jupyter-alice"
        )
        container = pod["spec"]["containers"][0]
        assert container["image"] == "quay.io/jupyter/scipy-notebook:latest"
        assert container["resources"]["limits"]["cpu"] in ("2", "2.0", 2, 2.0)
        assert notebook_processes("alice", hub)


def sign_in(page, hub, username: str) -> None:
    page.goto(f"{hub.public_url}/hub/login")
    page.click("#valeria-sign-in")
    page.wait_for_selector("#kc-form-login")
    page.fill("#username", username)
    page.fill("#password", username)
    page.click("#kc-login")
    page.wait_for_url(f"{hub.public_url}/hub/**")


def test_carol_is_refused_with_the_platforms_page_and_logs_out_from_it(tmp_path):
    """The refusal page with its support contact, whether the refusal answers the form
    at once or arrives on the progress page (Vault slow), then the logout's round trip
    through Keycloak to a page that says so."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    heading = "Your account is not set up for notebooks yet"
    with (
        running_stack(tmp_path) as stack,
        running_hub(stack, tmp_path / "hub") as hub,
        sync_playwright() as pw,
    ):
        contact = hub.env["SUPPORT_CONTACT"]
        browser = launch(pw)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            sign_in(page, hub, "carol")
            # Vault answers late: the form goes on to the progress page, which reloads
            # into the refusal page when the spawn is refused
            slow = stack.vault.faults.inject("/v1/auth/jwt/login", delay=2.5, times=1)
            try:
                page.goto(f"{hub.public_url}/hub/spawn")
                page.click("button[type=submit]")
                page.wait_for_url(f"{hub.public_url}/hub/spawn-pending/carol**")
                page.wait_for_selector("#valeria-refusal-heading", timeout=60_000)
            finally:
                stack.vault.faults.remove(slow)
            assert slow.hits == 1
            assert page.inner_text("#valeria-refusal-heading") == heading
            assert page.inner_text("#valeria-support-contact") == contact
            assert page.title() == f"{heading} – Valeria data-science platform"
            # at once: the answer to the form is the refusal page, not the form again
            page.goto(f"{hub.public_url}/hub/spawn")
            page.click("button[type=submit]")
            page.wait_for_selector("#valeria-refusal-heading")
            assert page.url.startswith(f"{hub.public_url}/hub/spawn")
            assert page.locator("#spawn_form").count() == 0
            message = page.inner_text("#valeria-refusal-message")
            assert message.startswith("Your account has no storage identity yet")
            assert page.inner_text("#valeria-support-contact") == contact
            # log out from the refusal page: Keycloak ends the session and sends the
            # browser back to the hub, which says so
            page.click("#valeria-logout-link")
            page.wait_for_selector("#valeria-logged-out-heading")
            assert page.url.startswith(f"{hub.public_url}/hub/login")
            assert page.inner_text("#valeria-logged-out-heading") == "You are logged out"
            assert page.title() == "Logged out – Valeria data-science platform"
            page.click("#valeria-login-again")
            page.wait_for_selector("#kc-form-login")  # a password again: the session ended
        finally:
            browser.close()
