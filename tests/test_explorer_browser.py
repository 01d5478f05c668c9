"""The explorer in a real browser (Debian's Chromium driven by Playwright) on a live one-validator network.

Checks what a person sees: the home page shows the current height and a new block appears without a reload
within 3 s (live updates over ``GET /v1/events``); a search by txid lands on the transaction page; the address
page's balance is the REST balance; a mistyped address gets the checksum message; and no page logs a console
error or throws. A screenshot of each page is saved under ``$LEDGER_TEST_ARTIFACTS`` (default
``build/test-artifacts/``). Skipped, saying why, where Playwright or ``/usr/bin/chromium`` is missing (``make
test`` installs the browser when it runs as root).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from node.crypto import encode_address
from tests.explorer_chain import running_paid_chain

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[1]
NEW_BLOCK_WITHIN_MS = 3000
AMOUNT = 250_000_000

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (pip install "
                                                             "-e '.[test]')")
if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
    pytest.skip(f"no browser at {CHROMIUM}: install Debian's chromium (`make test` does as root)",
                allow_module_level=True)
pytestmark = pytest.mark.processes


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("LEDGER_TEST_ARTIFACTS") or ROOT / "build" / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """One validator with one committed payment alice -> bob."""
    with running_paid_chain(tmp_path_factory.mktemp("explorer-browser"), AMOUNT) as net:
        yield net


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield launched
        finally:
            launched.close()


class Problems:
    """Console errors and uncaught exceptions of a page; ``expect_status`` names documents answered 4xx on
    purpose (the browser logs their status as a console error)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.expected: set[tuple[str, int]] = set()

    def on_console(self, message) -> None:
        if message.type != "error":
            return
        where = message.location.get("url", "")
        if any(where == url and f"status of {status}" in message.text for url, status in self.expected):
            return
        self.errors.append(f"console: {message.text} ({where})")

    def on_page_error(self, error) -> None:
        self.errors.append(f"pageerror: {error}")

    def expect_status(self, url: str, status: int) -> None:
        self.expected.add((url, status))


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    problems = Problems()
    tab.on("console", problems.on_console)
    tab.on("pageerror", problems.on_page_error)
    tab.problems = problems
    try:
        yield tab
        assert problems.errors == [], problems.errors
    finally:
        context.close()


def screenshot(page, name: str) -> None:
    page.screenshot(path=str(artifacts_dir() / f"explorer-{name}.png"), full_page=True)


def test_home_shows_the_height_and_a_new_block_arrives_without_reload(net, page):
    before = net.client.get(net.url(0) + "/v1/status").json()["height"]
    page.goto(net.url(0) + "/")
    shown = int(page.text_content("#height") or "0")
    assert shown >= before and shown == int(page.get_attribute("#block-rows tr[data-height]", "data-height") or 0)
    page.evaluate("window.__notReloaded = true")
    page.wait_for_function("(h) => Number(document.querySelector('#block-rows tr[data-height]').dataset.height) > h",
                           arg=shown, timeout=NEW_BLOCK_WITHIN_MS)
    assert page.evaluate("window.__notReloaded === true")
    newest = int(page.get_attribute("#block-rows tr[data-height]", "data-height") or 0)
    page.wait_for_function("(h) => Number(document.getElementById('height').textContent) >= h", arg=newest)
    assert page.text_content("#live-state") == "live"
    assert page.locator(f'#block-rows tr[data-height="{newest}"] a[href="/blocks/{newest}"]').count() == 2
    screenshot(page, "home")


def test_search_by_txid_lands_on_the_transaction_page(net, page):
    txid = net.tx.txid.hex()
    page.goto(net.url(0) + "/")
    page.fill("input[name=q]", txid)
    page.press("input[name=q]", "Enter")
    page.wait_for_url(f"**/txs/{txid}")
    assert page.text_content("#txid") == txid
    assert "committed" in (page.text_content("#tx-status") or "")
    screenshot(page, "tx")
    page.click("#tx-status a")  # the block it is in
    page.wait_for_url("**/blocks/*")
    assert page.locator(f'a[href="/txs/{txid}"]').count() >= 1
    screenshot(page, "block")


def test_address_page_balance_is_the_rest_balance(net, page):
    bob = encode_address(net.address("bob"))
    rest = net.client.get(net.url(0) + f"/v1/addresses/{bob}/balance").json()
    page.goto(net.url(0) + f"/addresses/{bob}")
    assert int(page.get_attribute("#balance", "data-base-units") or -1) == rest["balance"]
    assert (page.text_content("#balance") or "").replace(",", "") == rest["amount"]["coins"]
    screenshot(page, "address")


def test_a_mistyped_address_gets_the_checksum_message(net, page):
    bob = encode_address(net.address("bob"))
    typo = bob[:-1] + ("q" if bob[-1] != "q" else "p")
    page.problems.expect_status(net.url(0) + f"/search?q={typo}", 400)
    page.goto(net.url(0) + "/")
    page.fill("input[name=q]", typo)
    page.press("input[name=q]", "Enter")
    page.wait_for_url("**/search?q=*")
    assert "checksum is wrong" in (page.text_content("#error-message") or "")
    screenshot(page, "bad-checksum")


def test_validators_page_renders_cleanly(net, page):
    page.goto(net.url(0) + "/validators")
    assert page.locator("table.validators tbody tr").count() == 1
    screenshot(page, "validators")

