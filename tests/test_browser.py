"""Headless Chromium against both editions: the book's own way of trying it out.

Browsers are what broke the book's server (its F9): a favicon request after
every page, idle connections opened speculatively or kept alive after a page,
identical requests serialised. These tests drive a real Chromium (Debian's
``chromium`` and ``chromium-driver``) through selenium and check that

- the rendered DOM of ``/``, ``/sleep`` and a missing page is the hello page
  ("Hello!", "Hi from Python") or the 404 page ("Oops!");
- the favicon request gets the 404 page, and the connections Chromium keeps
  open after a page neither crash anything nor hold a threaded worker: with
  ``--workers 1``, another client's ``GET /`` is answered at once while the
  browser is still open; once the server has closed them for idleness, the
  next page still loads;
- the book's experiment: four tabs opening ``/sleep`` at once finish in two
  waves on the threaded edition with ``--workers 2``, together on asyncio.
  Each tab has its own query string, because Chromium serialises identical
  URLs (the book's C7), and ``/sleep?tab=1`` routes to ``/sleep``;
- ``bench.screenshot`` writes a PNG of the hello page.

Chromium starts once for the module (start-up is the slow part) and every
test uses that one browser. Without chromium or chromedriver on PATH, or
without selenium, the tests are skipped with the reason.
"""

from __future__ import annotations

import re
import shutil
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ServerFactory
from support import RunningServer, request

from bench import screenshot

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs headless Chromium: the Debian packages chromium and "
    "chromium-driver (chromium or chromedriver is not on PATH)",
)

PAGE_TIMEOUT = 20.0
"""Seconds a page load may take before selenium gives up (the slowest is ~2 s)."""
AT_ONCE = 1.0
"""A request that waits for no worker is answered well within this (seconds)."""

HELLO, HI = "Hello!", "Hi from Python"
OOPS, SORRY = "Oops!", "Sorry, I don't know what you're asking for."

Browser = Any
"""selenium's ``webdriver.Chrome``; selenium is imported only when it is there."""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One headless Chromium for the whole module, quit (with chromedriver) after."""
    webdriver = pytest.importorskip(
        "selenium.webdriver",
        reason="selenium is not installed (it is in the test extra: "
        "pip install '.[test]')",
    )
    assert CHROMIUM is not None
    assert CHROMEDRIVER is not None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in screenshot.CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    options.add_argument("--window-size=800,600")
    # Given chromedriver's path, selenium does not run Selenium Manager (which
    # would look for, or download, a driver of its own).
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_page_load_timeout(PAGE_TIMEOUT)
        driver.set_script_timeout(PAGE_TIMEOUT)
        yield driver
    finally:
        driver.quit()  # ends Chromium, then chromedriver by its PID


def _base(server: RunningServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def _text(browser: Browser, tag: str) -> str:
    return str(browser.find_element("tag name", tag).text)


def _assert_hello(browser: Browser) -> None:
    assert browser.title == HELLO
    assert _text(browser, "h1") == HELLO
    assert _text(browser, "p") == HI


def _assert_unharmed(server: RunningServer) -> None:
    """Still running, and nothing went wrong enough to be logged as an error."""
    assert server.process.poll() is None, server.log()
    assert not re.search(r" (ERROR|CRITICAL) |Traceback", server.log()), server.log()


def _browser_connections(port: int) -> int | None:
    """Established client connections to ``port`` on this host; None if unknown.

    Read from /proc/net/tcp{,6} (Linux): the rows whose remote port is the
    server's are the clients' ends. Only the browser talks to a server of its
    own, so these are the browser's connections.
    """
    count = 0
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            return None
        for row in rows:
            fields = row.split()
            remote_port, state = int(fields[2].rsplit(":", 1)[1], 16), fields[3]
            if remote_port == port and state == "01":  # 01: ESTABLISHED
                count += 1
    return count


# -- the pages ---------------------------------------------------------------------


def test_hello_page_renders(
    edition: str, shared_servers: dict[str, RunningServer], browser: Browser
) -> None:
    server = shared_servers[edition]
    browser.get(f"{_base(server)}/")
    _assert_hello(browser)
    assert server.process.poll() is None


def test_missing_page_renders_oops(
    edition: str, shared_servers: dict[str, RunningServer], browser: Browser
) -> None:
    server = shared_servers[edition]
    browser.get(f"{_base(server)}/no/such/page")
    assert browser.title == HELLO  # the book's 404 page keeps the title
    assert _text(browser, "h1") == OOPS
    assert _text(browser, "p") == SORRY
    assert server.process.poll() is None


def test_sleep_page_renders_hello_after_the_delay(
    edition: str, shared_servers: dict[str, RunningServer], browser: Browser
) -> None:
    server = shared_servers[edition]  # --sleep-seconds 0.2
    started = time.monotonic()
    browser.get(f"{_base(server)}/sleep?t={uuid.uuid4().hex[:8]}")
    assert time.monotonic() - started >= 0.2
    _assert_hello(browser)
    assert server.process.poll() is None


# -- favicon and the connections a browser keeps -------------------------------------


def test_favicon_404_and_idle_browser_connections_hold_no_worker(
    edition: str, server_factory: ServerFactory, browser: Browser
) -> None:
    workers = ("--workers", "1") if edition == "threaded" else ()
    server = server_factory(edition, "--keep-alive-timeout", "2", *workers)
    base = _base(server)

    browser.get(f"{base}/")
    _assert_hello(browser)
    favicon = server.wait_for_log(r'"GET /favicon\.ico HTTP/1\.1" 404 (\d+) ')

    # The browser is still open and keeps its connections; a book-style pool
    # that gave the one worker to a connection would leave GET / waiting.
    held = _browser_connections(server.port)
    assert held is None or held >= 1, "Chromium kept no connection: nothing to test"
    started = time.monotonic()
    answer = request(server.port, "/", timeout=5.0)
    waited = time.monotonic() - started
    assert answer.status == 200
    assert waited < AT_ONCE, f"GET / waited {waited:.2f} s beside {held} idle ones"

    # What the favicon request got is the 404 page, byte count and all.
    own = request(server.port, "/favicon.ico")
    assert own.status == 404
    assert f"<h1>{OOPS}</h1>".encode() in own.body
    assert int(favicon.group(1)) == len(own.raw)

    # Once the server has closed the idle connections (keep-alive timeout),
    # the browser notices and the next page loads on a new one.
    if held is not None:
        deadline = time.monotonic() + 10.0
        while _browser_connections(server.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _browser_connections(server.port), "idle connections never closed"
    browser.get(f"{base}/?again")
    _assert_hello(browser)
    _assert_unharmed(server)


# -- the book's experiment: several tabs open /sleep at once -----------------------

TABS = 4
SLEEP = 1.0
OPEN_TABS = """
const [base, count] = arguments;
const opened = performance.timeOrigin + performance.now();
for (let tab = 1; tab <= count; tab++) {
  window.open(`${base}/sleep?tab=${tab}`, `tab${tab}`);
}
return opened;
"""
LOADED = """
const nav = performance.getEntriesByType("navigation")[0];
if (document.readyState !== "complete" || !nav || !nav.responseEnd) return null;
return [location.pathname + location.search, performance.timeOrigin + nav.responseEnd];
"""


def _finished(browser: Browser, timeout: float = PAGE_TIMEOUT) -> tuple[str, float]:
    """The current tab's target and when its response ended (epoch ms)."""
    deadline = time.monotonic() + timeout
    while (loaded := browser.execute_script(LOADED)) is None:
        assert time.monotonic() < deadline, "a tab never finished loading"
        time.sleep(0.05)
    target, ended = loaded
    return str(target), float(ended)


def test_tabs_opening_sleep_at_once(
    edition: str, server_factory: ServerFactory, browser: Browser
) -> None:
    """Threaded, 2 workers: 4 tabs load in two waves; asyncio: all together."""
    workers = ("--workers", "2") if edition == "threaded" else ()
    server = server_factory(edition, "--sleep-seconds", str(SLEEP), *workers)
    browser.get(f"{_base(server)}/")  # the tabs' opener, on the same origin
    opener = browser.current_window_handle

    opened = float(browser.execute_script(OPEN_TABS, _base(server), TABS))
    took: dict[str, float] = {}
    try:
        for handle in browser.window_handles:
            if handle == opener:
                continue
            browser.switch_to.window(handle)
            target, ended = _finished(browser)
            _assert_hello(browser)
            took[target] = (ended - opened) / 1000
    finally:
        for handle in browser.window_handles:
            if handle != opener:
                browser.switch_to.window(handle)
                browser.close()
        browser.switch_to.window(opener)

    assert sorted(took) == [f"/sleep?tab={tab}" for tab in range(1, TABS + 1)]
    times = sorted(took.values())
    shown = ", ".join(f"{target} {seconds:.2f} s" for target, seconds in took.items())
    assert times[0] >= SLEEP * 0.95, shown  # each tab waited for /sleep
    if edition == "threaded":
        # Two workers: two tabs at ~1 x SLEEP, the other two waited for a worker
        # and so cannot end before 2 x SLEEP (100 ms allowed for clocks).
        assert times[1] < SLEEP * 1.75, f"first wave late: {shown}"
        assert times[2] >= SLEEP * 1.9, f"no second wave: {shown}"
        assert times[3] < SLEEP * 3.5, shown
    else:
        assert times[-1] < SLEEP * 1.75, f"not together: {shown}"
    for tab in range(1, TABS + 1):
        server.wait_for_log(rf'"GET /sleep\?tab={tab} HTTP/1\.1" 200 ')
    _assert_unharmed(server)


# -- the screenshot command ----------------------------------------------------------


def test_screenshot_command_writes_the_hello_page_png(tmp_path: Path) -> None:
    output = tmp_path / "shots" / "hello.png"
    assert screenshot.main(["--output", str(output), "--window-size", "320,200"]) == 0
    data = output.read_bytes()
    assert data.startswith(screenshot.PNG_SIGNATURE)
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert (width, height) == (320, 200)
