"""Fixtures of the browser tests: one ``make tutorial`` and one Chromium per module and front
end (JupyterLab, then Notebook 7: every test that uses them runs in both; see browser_lab.py for
how they are kept away from the user's own set-up), and a screenshot in test-artifacts/ of what
the browser showed when a test failed.

Module scope, not session: Playwright's sync API keeps an asyncio loop running while it is
open, and tests that call ``asyncio.run`` on the same worker must not run inside it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from browser_lab import APPS, CHROMIUM, CHROMIUM_ARGS, OUTCOME, Lab


@pytest.fixture(scope="module", params=APPS)
def lab(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Lab]:
    running = Lab(tmp_path_factory.mktemp(f"browser-{request.param}"), app=request.param)
    running.prepare()
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[Any]:
    """Chromium with a fresh profile (a persistent context, so the profile folder is ours)."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
            env={**lab.env, "HOME": str(profile)},
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[OUTCOME] = report
    return report
