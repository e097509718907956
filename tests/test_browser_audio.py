"""The reference audio server's page (reference/audio.py) in a real headless Chromium: upload
through the form, see the file listed and playable, see non-audio refused; keeps screenshots."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
from selenium.common.exceptions import (
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from conformance._target import Process, free_port, wait_until_listening
from fixtures.audio import AUDIO, NOT_AUDIO, SAMPLES
from tests._browser import artifacts_dir, headless_chromium, require_browser, wait
from tests.conftest import PY, ROOT

SCRIPT = ROOT / "reference" / "audio.py"
MESSAGE = "Non-audio file detected"
HAVE_METADATA = 1
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Site:
    """The running reference server: its base URL and the folder it stores files in."""

    base_url: str
    folder: Path


def sample(name: str) -> Path:
    """The absolute path of a shared sample file (the file input needs an absolute path)."""
    path = SAMPLES[name].resolve()
    assert path.is_file(), f"missing sample {path}"
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless Chromium session for the whole module (starting one costs ~1 s)."""
    with headless_chromium(require_browser()) as driver:
        yield driver


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """reference/audio.py as a user runs it, on a free loopback port and an empty folder."""
    folder = tmp_path_factory.mktemp("audio-files")
    port = free_port()
    proc = Process.start([PY, str(SCRIPT), "--host", "127.0.0.1", "--port", str(port),
                          "--folder", str(folder), "--quiet"], writable=[folder])
    try:
        if not wait_until_listening("127.0.0.1", port, 15.0, lambda: proc.exited() is not None):
            pytest.fail(f"reference/audio.py did not listen on 127.0.0.1:{port} "
                        f"(exit status {proc.exited()}); its output ends:\n{proc.output_tail()}")
        yield Site(f"http://127.0.0.1:{port}", folder)
    finally:
        proc.stop()


# --- helpers ----------------------------------------------------------------------------------

def upload_form(driver: WebDriver) -> WebElement:
    """The page's upload form: the form that holds the file input."""
    return driver.find_element(By.XPATH, "//form[.//input[@type='file']]")


def gone(element: WebElement) -> Callable[[WebDriver], bool]:
    """A wait condition: `element`'s page has been replaced. Like `EC.staleness_of`, but a node
    chromium has already detached answers "does not belong to the document" rather than
    "stale" while the old page is torn down (seen in CI), and that is gone too."""
    def check(_: WebDriver) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in (exc.msg or ""):
                return True
            raise
        return False
    return check


def upload(driver: WebDriver, site: Site, path: Path) -> None:
    """Open the page, choose `path` in the file input, press the button, wait for the answer."""
    driver.get(site.base_url + "/")
    form = upload_form(driver)
    form.find_element(By.CSS_SELECTOR, "input[type=file][name=file]").send_keys(str(path))
    button = form.find_element(By.CSS_SELECTOR, "button")
    button.click()
    # The old page goes away once the browser has the answer (303 then the page, or 415).
    wait(driver).until(gone(button))
    wait(driver).until(lambda d: d.execute_script("return document.readyState") == "complete")


def listed(driver: WebDriver, name: str) -> WebElement | None:
    """The `<li>` of `ul#files` that names `name`, or None."""
    for item in driver.find_elements(By.CSS_SELECTOR, "ul#files > li"):
        if name in item.text:
            return item
    return None


def screenshot(driver: WebDriver, name: str) -> Path:
    """Save the page as a PNG artifact and check it was written."""
    path = artifacts_dir() / name
    path.unlink(missing_ok=True)
    assert driver.save_screenshot(str(path)), f"chromium did not save {path}"
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000, f"{path} is not a screenshot"
    return path


def metadata_state(driver: WebDriver, audio: WebElement) -> dict[str, object]:
    """Reload the player and wait until it has the metadata or gives up with an error."""
    driver.execute_script("arguments[0].load();", audio)
    state_js = ("const a = arguments[0]; return {ready: a.readyState, duration: a.duration,"
                " error: a.error && [a.error.code, a.error.message]};")
    # On a timeout the caller's assertions say what state it was left in.
    with contextlib.suppress(TimeoutException):
        wait(driver).until(lambda d: d.execute_script(
            "const a = arguments[0]; return a.readyState >= 1 || a.error !== null;", audio))
    state: dict[str, object] = driver.execute_script(state_js, audio)
    return state


# --- the page ---------------------------------------------------------------------------------

def test_page_has_the_list_and_the_upload_form(browser: WebDriver, site: Site) -> None:
    browser.get(site.base_url + "/")
    assert browser.find_elements(By.CSS_SELECTOR, "ul#files"), "no <ul id=files> on the page"
    form = upload_form(browser)
    assert form.get_attribute("method") == "post"
    assert form.get_attribute("enctype") == "multipart/form-data"
    assert form.get_attribute("action") == site.base_url + "/"
    assert form.find_elements(By.CSS_SELECTOR, "input[type=file][name=file]")
    assert form.find_elements(By.CSS_SELECTOR, "button")


# Every audio sample (mp3 with and without ID3, ogg vorbis, ogg opus, wav, flac) is decodable by
# Debian's chromium (checked on 156.0.8078.79), so none is left out.
@pytest.mark.parametrize("name", sorted(AUDIO))
def test_uploaded_audio_is_listed_and_playable(browser: WebDriver, site: Site, name: str) -> None:
    path = sample(name)
    upload(browser, site, path)
    # Stored files send the browser back to the page (303 to /).
    assert browser.current_url == site.base_url + "/"
    assert MESSAGE not in browser.find_element(By.TAG_NAME, "body").text
    item = listed(browser, name)
    assert item is not None, f"{name} is not listed after the upload"
    audio = item.find_element(By.TAG_NAME, "audio")
    assert audio.get_attribute("controls") is not None, "the player has no controls"
    src = audio.get_attribute("src") or ""
    assert urlsplit(src).path == "/files/" + quote(name)

    # What the player fetches: the file itself, as audio, and by range as players ask for it.
    with httpx.Client(timeout=10.0) as client:
        whole = client.get(src)
        part = client.get(src, headers={"Range": "bytes=0-"})
    assert whole.status_code == 200
    assert whole.content == path.read_bytes()
    assert whole.headers["content-type"].startswith("audio/")
    assert part.status_code in (200, 206)
    assert part.headers["content-type"].startswith("audio/")

    state = metadata_state(browser, audio)
    assert state["error"] is None, f"chromium cannot play {name}: {state}"
    assert isinstance(state["ready"], int) and state["ready"] >= HAVE_METADATA, state
    assert isinstance(state["duration"], int | float) and state["duration"] > 0, state

    if name == "tone.mp3":
        screenshot(browser, "after-audio-upload.png")


@pytest.mark.parametrize("name", sorted(NOT_AUDIO))
def test_non_audio_is_refused_with_the_message(browser: WebDriver, site: Site,
                                               name: str) -> None:
    upload(browser, site, sample(name))
    messages = browser.find_elements(By.ID, "message")
    assert messages, "the refusal page has no element with id=message"
    assert messages[0].text == MESSAGE
    if name == "picture.jpg":
        screenshot(browser, "after-refused-jpg.png")
    browser.get(site.base_url + "/")
    assert listed(browser, name) is None, f"the refused {name} is listed"

