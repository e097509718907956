"""A real headless Chromium for the tests, driven by Selenium through Debian's chromedriver.
Where either is missing the test is skipped, or failed when CI=true."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import ROOT

INSTALL_HINT = "on Debian or Ubuntu: apt-get install chromium chromium-driver"
PAGE_LOAD_TIMEOUT = 20.0
SCRIPT_TIMEOUT = 10.0
WAIT_TIMEOUT = 10.0
CHROMIUM_FLAGS = (
    "--headless=new",
    # Root in a container has no user namespaces for the sandbox.
    "--no-sandbox",
    "--disable-gpu",
    # Containers often have a tiny /dev/shm, where Chromium's renderers crash.
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    # Nothing but the server under test may be contacted: no updates, sync or prefetching.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1024,768",
)


@dataclass(frozen=True)
class BrowserBinaries:
    """Where chromium and its chromedriver are, and their versions."""

    chromium: str
    chromedriver: str
    chromium_version: str
    chromedriver_version: str


def _version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL, check=False)
    match = re.search(r"\d+\.\d+\.\d+\.\d+", out.stdout)
    return match.group(0) if match else out.stdout.strip()


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, where the browser tests must run, not be skipped")
    pytest.skip(reason)


def require_browser() -> BrowserBinaries:
    """chromium and chromedriver of one version; skips the test otherwise, fails it under CI=true.

    CI installs both (.ci/run), so there a missing one is a broken setup, and a skip would hide
    that the browser tests never ran.
    """
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        missing = [n for n, p in (("chromium", chromium), ("chromedriver", chromedriver))
                   if p is None]
        verb = "are" if len(missing) > 1 else "is"
        _missing(f"{' and '.join(missing)} {verb} not installed ({INSTALL_HINT})")
    assert chromium is not None and chromedriver is not None
    browser, driver = _version(chromium), _version(chromedriver)
    # chromedriver refuses a browser of another major version; say so before it does, plainly.
    if browser.split(".")[0] != driver.split(".")[0]:
        _missing(f"chromium {browser} and chromedriver {driver} do not match ({INSTALL_HINT})")
    return BrowserBinaries(chromium, chromedriver, browser, driver)


@contextmanager
def headless_chromium(binaries: BrowserBinaries) -> Iterator[WebDriver]:
    """A Selenium session on a fresh headless Chromium profile, quit and removed afterwards.

    The driver's path is given, so Selenium Manager never runs (nor downloads anything).
    """
    profile = Path(tempfile.mkdtemp(prefix="chromium-test-"))
    options = webdriver.ChromeOptions()
    options.binary_location = binaries.chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    log = profile.parent / f"{profile.name}-chromedriver.log"
    service = Service(executable_path=binaries.chromedriver, log_output=str(log))
    saved = os.environ.get("SE_OFFLINE")
    # Belt and braces: should Selenium Manager run after all, it must not go online.
    os.environ["SE_OFFLINE"] = "true"
    try:
        try:
            driver = webdriver.Chrome(options=options, service=service)
        except Exception as exc:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"headless chromium did not start: {exc}\n"
                               f"chromedriver's log ends:\n{tail}") from exc
    finally:
        if saved is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = saved
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
        driver.set_script_timeout(SCRIPT_TIMEOUT)
        # No implicit waits: every wait is an explicit WebDriverWait with its own bound.
        driver.implicitly_wait(0)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        log.unlink(missing_ok=True)


def wait(driver: WebDriver, timeout: float = WAIT_TIMEOUT) -> WebDriverWait[WebDriver]:
    """An explicit WebDriverWait on `driver`, bounded by `timeout` seconds."""
    return WebDriverWait(driver, timeout, poll_frequency=0.05)


def artifacts_dir() -> Path:
    """Where screenshots go: $BROWSER_ARTIFACTS, else artifacts/browser/ (git-ignored)."""
    folder = Path(os.environ.get("BROWSER_ARTIFACTS") or ROOT / "artifacts" / "browser")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
