"""A person picks a flavour on the spawn form in Chromium and lands in JupyterLab."""

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
