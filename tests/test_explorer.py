"""The explorer's HTML pages on a live one-validator network: data, escaping, CSP, search, error pages.

Every page is fetched as a browser without JavaScript would (plain GET): what it shows must be in the HTML.
The pruned page and the escaping of names a test cannot put in a genesis (validator names there are
[A-Za-z0-9._-]) are checked against the app and the templates directly.
"""

from __future__ import annotations

import asyncio
import html
import re
import types

import httpx
import markupsafe
import pytest
from fastapi.routing import APIRoute

from node.api.app import create_app
from node.config import NodeConfig
from node.crypto import address_hash, derive_public_key, encode_address, sha256
from node.explorer.formats import format_coins
from node.explorer.pages import BlockSummary, ChainRates, ValidatorRow
from node.explorer.routes import CONTENT_SECURITY_POLICY, make_templates
from node.ledger.state import UtxoEntry
from node.types.transaction import OutPoint, TxOutput, sign_transaction
from tests.explorer_chain import running_paid_chain

AMOUNT = 123_456_789
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.IGNORECASE)
INLINE_ATTRIBUTE = re.compile(r"\s(style|on[a-z]+)\s*=", re.IGNORECASE)
TAG = re.compile(r"<[a-zA-Z][^>]*>")


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """One validator with one committed payment alice -> bob, and the block after it (the block page's link)."""
    with running_paid_chain(tmp_path_factory.mktemp("explorer"), AMOUNT) as net:
        net.wait_height(net.tx_height + 1)
        yield net
        log = (net.specs[0].home / "node.log").read_text()
        assert "internal error" not in log, log[-3000:]


def page(net, path: str, status: int = 200) -> str:
    r = net.client.get(net.url(0) + path)
    assert r.status_code == status, (path, r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("text/html"), (path, r.headers["content-type"])
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
    assert not INLINE_SCRIPT.search(r.text) and "<style" not in r.text, path
    # no inline handler or style attribute (quoted values, which autoescaping keeps closed, are left out)
    assert not any(INLINE_ATTRIBUTE.search(re.sub(r'"[^"]*"', '""', tag)) for tag in TAG.findall(r.text)), path
    return r.text


def text_of(markup: str) -> str:
    """The page's text as a person reads it: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def test_home_shows_the_tip_its_signers_rates_and_latest_blocks(net):
    status = net.client.get(net.url(0) + "/v1/status").json()
    text = text_of(page(net, "/"))
    assert status["chain_id"] in text and status["app_hash"] in text or net.status(0)["height"] > status["height"]
    assert "validator-0" in text and "signed" in text and "Mempool" in text and "Committed tx/s" in text
    assert re.search(r"Height (\d+)", text) and int(re.search(r"Height (\d+)", text).group(1)) >= status["height"]
    markup = page(net, "/")
    assert f'href="/blocks/{net.tx_height}"' in markup or status["height"] - net.tx_height >= 20
    assert '<script src="/assets/live.js" defer></script>' in markup


def test_block_page_shows_header_transactions_signatures_and_neighbours(net):
    block = net.client.get(net.url(0) + f"/v1/blocks/{net.tx_height}").json()
    markup = page(net, f"/blocks/{net.tx_height}")
    text = text_of(markup)
    assert block["hash"] in text and block["header"]["app_hash"] in text and block["header"]["tx_root"] in text
    assert f'href="/txs/{net.tx.txid.hex()}"' in markup and format_coins(AMOUNT) in text
    signer = encode_address(net.address("bob"))  # a recipient of the payment is listed with its amount
    assert f'href="/addresses/{signer}"' in markup
    assert "Commit signatures" in text and "validator-0" in text
    assert f'href="/blocks/{net.tx_height - 1}"' in markup and f'href="/blocks/{net.tx_height + 1}"' in markup


def test_transaction_page_shows_spent_outputs_fee_block_and_proof(net):
    answer = net.client.get(net.url(0) + f"/v1/txs/{net.tx.txid.hex()}").json()
    text = text_of(page(net, f"/txs/{net.tx.txid.hex()}"))
    alice, bob = encode_address(net.address("alice")), encode_address(net.address("bob"))
    assert "committed in block" in text and str(answer["height"]) in text and answer["block_hash"] in text
    assert answer["wtxid"] in text and answer["tx_root"] in text
    # the input: alice's genesis allocation, its address and amount found for the page
    spent = net.client.get(net.url(0) + f"/v1/addresses/{alice}/txs").json()["txs"][-1]
    assert spent["kind"] == "genesis" and alice in text and format_coins(spent["received"]) in text
    assert bob in text and format_coins(AMOUNT) in text
    assert f"Fee {format_coins(1000)}" in text and f"Size {net.tx.size} bytes" in text


def test_address_page_shows_balance_history_and_utxos(net):
    bob = encode_address(net.address("bob"))
    balance = net.client.get(net.url(0) + f"/v1/addresses/{bob}/balance").json()["balance"]
    markup = page(net, f"/addresses/{bob}")
    assert f'data-base-units="{balance}"' in markup
    text = text_of(markup)
    assert f"Balance {format_coins(balance)}" in text and f"+{format_coins(AMOUNT)}" in text
    assert f'href="/txs/{net.tx.txid.hex()}"' in markup and "genesis allocation" in text
    # paging: a cursor past the newest entry leaves the genesis allocation only
    older = text_of(page(net, f"/addresses/{bob}?before={net.tx_height}:0"))
    assert "genesis allocation" in older and f"+{format_coins(AMOUNT)}" not in older
    assert "Bad page cursor" in text_of(page(net, f"/addresses/{bob}?before=x:y", 400))
    assert "Bad page cursor" in text_of(page(net, f"/addresses/{bob}?utxos_after=zz", 400))


def test_validators_page_shows_the_set_evidence_and_changes(net):
    current = net.client.get(net.url(0) + "/v1/validators").json()
    changes = net.client.get(net.url(0) + "/v1/validators/changes").json()["changes"]
    text = text_of(page(net, "/validators"))
    member = current["validators"][0]
    assert member["name"] in text and member["address"] in text and str(member["proposer_priority"]) in text
    assert "Evidence" in text and "None: no validator" in text
    assert all(c["validators_hash"] in text for c in changes)


def test_search_leads_to_each_kind_of_page(net):
    url, c = net.url(0), net.client
    block = c.get(url + f"/v1/blocks/{net.tx_height}").json()
    bob = encode_address(net.address("bob"))
    for query, target in ((str(net.tx_height), f"/blocks/{net.tx_height}"),
                          (block["hash"], f"/blocks/{net.tx_height}"),
                          (block["hash"].upper(), f"/blocks/{net.tx_height}"),
                          (net.tx.txid.hex(), f"/txs/{net.tx.txid.hex()}"),
                          (f"  {bob} ", f"/addresses/{bob}"), (bob.upper(), f"/addresses/{bob}")):
        r = c.get(url + "/search", params={"q": query})
        assert r.status_code == 303 and r.headers["location"] == target, (query, r.status_code, r.headers)
    typo = bob[:-1] + ("q" if bob[-1] != "q" else "p")
    assert "checksum is wrong" in text_of(page(net, f"/search?q={typo}", 400))
    assert "checksum is wrong" in text_of(page(net, f"/addresses/{typo}", 400))
    assert "not a valid address" in text_of(page(net, "/search?q=lg1abc", 400))
    for unknown in ("00" * 32, "no-such-thing", "99999999"):
        assert "Not found" in text_of(page(net, f"/search?q={unknown}", 404)), unknown
    assert "Type a block height" in text_of(page(net, "/search?q=", 400))
    assert "at most 200 characters" in text_of(page(net, "/search?q=" + "1" * 201, 400))


def test_unknown_and_malformed_urls_get_html_error_pages(net):
    for path, status, words in (("/blocks/99999999", 404, "No block 99999999"), ("/blocks/0", 404, "No block 0"),
                                ("/blocks/abc", 400, "Not a block height"), ("/blocks/1?page=x", 400, "Not a block"),
                                (f"/blocks/{2**70}", 400, "Not a block height"),
                                ("/txs/zz", 400, "Not a transaction id"), ("/txs/" + "00" * 31, 400, "Not a tr"),
                                ("/txs/" + "00" * 32, 404, "Transaction not found"),
                                ("/addresses/garbage", 400, "Not an address")):
        assert words in text_of(page(net, path, status)), path


def test_reflected_input_is_escaped(net):
    attack = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    markup = page(net, "/search?" + httpx.QueryParams({"q": attack}).__str__(), 404)
    assert attack not in markup and str(markupsafe.escape(attack)) in markup


def test_assets_are_served_with_the_policy(net):
    for path, kind in (("/assets/live.js", "javascript"), ("/assets/explorer.css", "text/css")):
        r = net.client.get(net.url(0) + path)
        assert r.status_code == 200 and kind in r.headers["content-type"], path
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    live = net.client.get(net.url(0) + "/assets/live.js").text
    assert 'new EventSource("/v1/events?kinds=block")' in live and "innerHTML" not in live
    assert net.client.get(net.url(0) + "/assets/nope.js").status_code == 404


def test_pages_stay_out_of_the_api_schema():
    app = create_app(types.SimpleNamespace(config=NodeConfig()))
    pages = {route.path: route.include_in_schema for route in app.routes if isinstance(route, APIRoute)
             and not route.path.startswith(("/v1", "/metrics", "/docs", "/redoc", "/openapi"))}
    assert pages == {path: False for path in ("/", "/blocks/{height}", "/txs/{txid}", "/addresses/{address}",
                                              "/validators", "/search")}


def test_names_from_the_chain_are_escaped_in_every_template():
    """Validator names come from join requests (any UTF-8 up to the size limit): they are text, never markup."""
    evil = '<script>alert("x")</script>'
    row = ValidatorRow(name=evil, address="lg1x", power=1, signed=True, priority=0)
    env = make_templates().env
    base = {"chain_id": "c<i>", "node_height": 1, "now_ms": 0, "query": evil}
    home = env.get_template("home.html").render(
        **base, height=1, tip=None, app_hash="", mempool_size=0, validators=[row], signed_power=1, total_power=1,
        rates=ChainRates(0, 0, None, None), names={"lg1x": evil},
        latest=[BlockSummary(height=1, hash="ab", time_ms=0, tx_count=0, proposer="lg1x")])
    listing = env.get_template("validators.html").render(
        **base, height=2, validators=[row], total_power=1, changes=[],
        evidence=[{"name": evil, "address": "lg1x", "height": 1, "round": 0, "vote_type": evil,
                   "vote_a": {"block_hash": None}, "vote_b": {"block_hash": None}, "seen_at_ms": 0}])
    for markup in (home, listing):
        assert evil not in markup and "<i>" not in markup
        assert str(markupsafe.escape(evil)) in markup and "c&lt;i&gt;" in markup


def test_a_pruned_height_says_so_with_410():
    store = types.SimpleNamespace(height=500, earliest_height=300)
    node = types.SimpleNamespace(config=NodeConfig(), chain_id="pruned-chain", store=store)
    app = create_app(node)

    async def get(path: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as client:
            return await client.get(path)

    r = asyncio.run(get("/blocks/42"))
    assert r.status_code == 410 and r.headers["content-type"].startswith("text/html")
    text = text_of(r.text)
    assert "Block 42 is pruned" in text and "earliest block is 300" in text
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_a_pending_transaction_shows_its_mempool_fee_and_spent_output():
    """A transaction only in the mempool (a live network commits one within a second: checked on the app)."""
    key = sha256(b"explorer pending test key")
    owner = address_hash(derive_public_key(key))
    prev = OutPoint(sha256(b"a committed parent"), 3)
    tx = sign_transaction("pending-chain", [(prev, key)], [TxOutput(owner, 9_000)])
    entry = types.SimpleNamespace(tx=tx, fee=1_000)
    store = types.SimpleNamespace(height=7, earliest_height=1, get_utxo={prev: UtxoEntry(owner, 10_000, 5)}.get)
    node = types.SimpleNamespace(config=NodeConfig(), chain_id="pending-chain", store=store,
                                 waiters=types.SimpleNamespace(locate=lambda txid: None),
                                 mempool=types.SimpleNamespace(get={tx.txid: entry}.get))
    app = create_app(node)

    async def get(path: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as client:
            return await client.get(path)

    r = asyncio.run(get(f"/txs/{tx.txid.hex()}"))
    assert r.status_code == 200, r.text
    text = text_of(r.text)
    assert "pending in this node's mempool" in text and f"Fee {format_coins(1_000)}" in text
    assert f"{encode_address(owner)} {format_coins(10_000)}" in text and "Merkle proof" not in text
    assert f'href="/txs/{prev.txid.hex()}"' in r.text
