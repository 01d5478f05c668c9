"""A small REST client for the node API, with clear errors.

It is given one or more node URLs: on a connection failure it moves on to
the next one (a devnet wallet keeps working when one node is down).  Every
answer is JSON; an error answer becomes ``NodeError`` with the node's stable
code and message.

Given the genesis hash a wallet pinned (``expect_genesis``), the client asks
each node it is about to use for ``GET /v1/status`` once per session and
refuses one that runs another genesis (``WrongGenesis``, code
``wrong-genesis``) before any of its answers is used: two networks may well
share a chain id, never a genesis hash.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx

from node.errors import CodedError

DEFAULT_TIMEOUT_S = 10.0


class NodeUnreachable(Exception):
    """No node answered."""

    code = "node-unreachable"

    def __init__(self, urls: list[str], reason: str):
        self.urls = urls
        self.message = f"cannot reach the node at {', '.join(urls)}: {reason}"
        super().__init__(self.message)


class NodeError(CodedError):
    """The node answered with an error (its ``code`` is the node's stable code)."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None, url: str = ""):
        super().__init__(code, message)
        self.status = status
        self.details = details or {}
        self.url = url


class WrongGenesis(Exception):
    """The node runs another genesis than the one the wallet pinned: another network, never believed."""

    code = "wrong-genesis"

    def __init__(self, url: str, expected: str, served: str, chain_id: str | None, expected_chain: str | None = None):
        self.url = url
        self.expected = expected
        self.served = served
        self.chain_id = chain_id
        self.expected_chain = expected_chain
        self.message = (f"{url} runs chain {chain_id!r} with genesis {served}, but this wallet is pinned to "
                        f"chain {expected_chain!r} with genesis {expected}: a node of another network (or one "
                        f"that lies). Ask a node of the wallet's network with --node; if that network was "
                        f"recreated on purpose, `ledger-wallet trust --reset` pins the new genesis.")
        super().__init__(self.message)


class NodeClient:
    """Talks to the first reachable node of ``urls``."""

    def __init__(self, urls: list[str] | str, timeout_s: float = DEFAULT_TIMEOUT_S,
                 transport: httpx.BaseTransport | None = None, expect_genesis: str | None = None,
                 expect_chain: str | None = None):
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        if not self.urls:
            raise ValueError("at least one node URL is needed")
        self.urls = [u.rstrip("/") for u in self.urls]
        self.timeout_s = timeout_s
        self._http = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0)), transport=transport)
        self.url = self.urls[0]
        """The node that answered last."""
        self._picked = len(self.urls) == 1
        self.expect_genesis = expect_genesis
        """Genesis hash (hex) every node must run before its answers are used; None: no check."""
        self.expect_chain = expect_chain
        """The pinned chain id, for messages."""
        self._genesis_ok: set[str] = set()
        """Nodes whose genesis was checked against ``expect_genesis`` in this session."""

    def expect(self, genesis_hash: str | None, chain_id: str | None = None) -> None:
        """From now on, use only nodes running genesis ``genesis_hash`` (checked again after a change)."""
        if genesis_hash != self.expect_genesis:
            self._genesis_ok.clear()
        self.expect_genesis = genesis_hash
        self.expect_chain = chain_id

    def _check_genesis(self, url: str) -> None:
        """Refuse ``url`` when its genesis is not ``expect_genesis`` (one status request per node and session).

        Connection errors propagate as in ``request`` (the caller moves on to the next node).
        """
        if self.expect_genesis is None or url in self._genesis_ok:
            return
        response = self._http.get(url + "/v1/status")
        served, chain_id = None, None
        if response.status_code == 200:
            try:
                body = response.json()
                served, chain_id = body.get("genesis_hash"), body.get("chain_id")
            except (ValueError, AttributeError):
                pass
        if not isinstance(served, str):
            # a node whose status does not name its genesis: hash the document it serves instead
            from genesis.document import genesis_hash, parse_genesis
            from genesis.errors import GenesisError

            answer = self._decode(self._http.get(url + "/v1/genesis"), url)
            try:
                genesis = parse_genesis(answer.get("genesis"))
            except GenesisError as exc:
                raise NodeError(200, "bad-answer", f"the genesis served by {url} is not valid: {exc.message}",
                                url=url) from None
            served, chain_id = genesis_hash(genesis).hex(), genesis.chain_id
        if served.lower() != self.expect_genesis.lower():
            self.url = url
            raise WrongGenesis(url, self.expect_genesis, served, chain_id, self.expect_chain)
        self._genesis_ok.add(url)

    def status(self) -> dict:
        """``GET /v1/status`` of the node this client uses now (or the next reachable one), its genesis checked."""
        return self.request("GET", "/v1/status")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pick(self) -> None:
        """With several nodes, start with the first that says it is healthy (skips paused or failed ones)."""
        self._picked = True
        for url in self.urls:
            try:
                if self._http.get(url + "/v1/health", timeout=httpx.Timeout(1.0)).status_code == 200:
                    self.url = url
                    return
            except httpx.HTTPError:
                continue

    def request(self, method: str, path: str, *, params: dict | None = None, json: object = None,
                timeout_s: float | None = None) -> dict:
        if not self._picked:
            self._pick()
        order = [self.url] + [u for u in self.urls if u != self.url]
        reasons = []
        params = {k: v for k, v in (params or {}).items() if v is not None}
        for url in order:
            try:
                self._check_genesis(url)
                timeout = httpx.USE_CLIENT_DEFAULT if timeout_s is None else httpx.Timeout(timeout_s, connect=3.0)
                response = self._http.request(method, url + path, params=params, json=json, timeout=timeout)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                reasons.append(f"{url}: {exc or type(exc).__name__}")
                continue
            except httpx.TimeoutException:
                raise NodeUnreachable([url], "no answer in time (is the node paused or overloaded?)") from None
            except httpx.HTTPError as exc:
                raise NodeUnreachable([url], str(exc) or type(exc).__name__) from None
            self.url = url
            return self._decode(response, url)
        raise NodeUnreachable(order, "; ".join(reasons) or "connection refused")

    @staticmethod
    def _decode(response: httpx.Response, url: str) -> dict:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict):
                details = {k: v for k, v in error.items() if k not in ("code", "message")}
                raise NodeError(response.status_code, str(error.get("code", "http-error")),
                                str(error.get("message", "")), details, url)
            raise NodeError(response.status_code, "http-error",
                            f"HTTP {response.status_code}: {response.text[:200]}", url=url)
        if not isinstance(body, dict):
            raise NodeError(response.status_code, "bad-answer", "the node's answer is not a JSON object", url=url)
        return body

    @contextlib.contextmanager
    def stream(self, path: str, params: dict | None = None, headers: dict | None = None,
               read_timeout_s: float = 60.0) -> Iterator[httpx.Response]:
        """``GET path`` held open (Server-Sent Events): the response, once its status is 200.

        Like ``request``: the first reachable node of ``urls``, its genesis checked; an error answer raises
        ``NodeError``.  ``read_timeout_s`` bounds the silence between two reads (the node pings idle streams)."""
        if not self._picked:
            self._pick()
        order = [self.url] + [u for u in self.urls if u != self.url]
        params = {k: v for k, v in (params or {}).items() if v is not None}
        reasons = []
        for url in order:
            try:
                self._check_genesis(url)
                timeout = httpx.Timeout(read_timeout_s, connect=min(self.timeout_s, 3.0))
                with self._http.stream("GET", url + path, params=params, headers=headers, timeout=timeout) as answer:
                    self.url = url
                    if answer.status_code != 200:
                        answer.read()
                        self._decode(answer, url)
                    yield answer
                    return
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                reasons.append(f"{url}: {exc or type(exc).__name__}")
                continue
        raise NodeUnreachable(order, "; ".join(reasons) or "connection refused")

    def get(self, path: str, **params: object) -> dict:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: object, timeout_s: float | None = None, **params: object) -> dict:
        return self.request("POST", path, json=body, params=params, timeout_s=timeout_s)
