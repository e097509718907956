"""The generated API pages in a real headless Chromium, opened from file:// with nothing else to
reach: Swagger UI draws every operation of the document embedded in the page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from conformance import load_spec, spec_names
from tests._browser import headless_chromium, require_browser, wait
from tests.conftest import ROOT

DOCS = ROOT / "docs" / "api"
APIS = sorted({s.openapi.stem for s in map(load_spec, spec_names()) if s.openapi is not None})


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless Chromium session for the module."""
    with headless_chromium(require_browser()) as driver:
        yield driver


def operations(name: str) -> int:
    """How many operations the OpenAPI file has."""
    document = yaml.safe_load((ROOT / "openapi" / f"{name}.yaml").read_text(encoding="utf-8"))
    return sum(1 for item in document["paths"].values() for key in item
               if key in ("get", "post", "put", "patch", "delete", "head", "options"))


@pytest.mark.parametrize("name", APIS)
def test_api_page_draws_every_operation_offline(browser: WebDriver, name: str) -> None:
    page = DOCS / f"{name}.html"
    browser.get(page.as_uri())
    want = operations(name)
    wait(browser).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= want)
    assert len(browser.find_elements(By.CSS_SELECTOR, ".opblock")) == want
    assert not browser.find_elements(By.CSS_SELECTOR, ".errors-wrapper .error-wrapper")
