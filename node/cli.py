"""``ledger-node``: init a home, start a node, inspect its store, simulate consensus."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from node.config import ConfigError, NodeConfig, load_config, parse_set_options
from node.errors import CodedError

log = logging.getLogger("ledger.node")


def setup_logging(level: str, log_file: str = "") -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    out = parse_set_options(getattr(args, "set", None))
    for key in ("name", "host", "port", "p2p_port", "peers", "log_level", "log_file"):
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value
    return out


def cmd_init(args: argparse.Namespace) -> int:
    from node.home import HomeError, init_home

    key = None
    try:
        if args.key:
            from node.home import load_key_file
            key = load_key_file(Path(args.key)).private_key
        config = NodeConfig().with_overrides(_overrides(args))
        from node.p2p.switch import parse_peer_address
        for peer in config.peers:
            parse_peer_address(peer)
        refusal = _not_a_validator(Path(args.genesis), key, args.full_node)
        if refusal:
            print(f"error: {refusal}", file=sys.stderr)
            return 2
        config, genesis, node_key = init_home(Path(args.home), Path(args.genesis), key, config, force=args.force,
                                              from_snapshot=Path(args.from_snapshot) if args.from_snapshot else None,
                                              state_sync=args.state_sync)
    except (HomeError, ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CodedError as exc:  # a snapshot that does not check out (nothing was written)
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    from node.crypto import encode_address
    from node.p2p.secret import node_id_of
    node_id = node_id_of(node_key.public_key)
    print(json.dumps({"home": str(args.home), "chain_id": genesis.chain_id,
                      "address": encode_address(node_key.address), "port": config.port, "node_id": node_id,
                      "peer_address": f"{node_id}@{config.host}:{config.p2p_port}"}, indent=2))
    return 0


def _not_a_validator(genesis_path: Path, key: bytes | None, full_node: bool) -> str:
    """Why ``init`` refuses: the key (a new one without ``--key``) is not a validator of the genesis and
    ``--full-node`` was not given; "" when it may go on."""
    if full_node:
        return ""
    from genesis.document import load_genesis
    from node.crypto import address_hash, derive_public_key

    genesis = load_genesis(genesis_path)
    if key is not None and any(address_hash(v.public_key) == address_hash(derive_public_key(key))
                               for v in genesis.validators):
        return ""
    which = "the key in --key is not" if key is not None else "without --key, init makes a new key, which is not"
    return (f"{which} one of the {len(genesis.validators)} validators in {genesis_path}: pass a validator's key "
            f"(`ledger-genesis new` / `python -m genesis new` wrote keys/validator-N.json beside the genesis), "
            f"or --full-node to follow the chain without voting")


def cmd_id(args: argparse.Namespace) -> int:
    """Print the node's id and its peer address (what other nodes put in ``peers``)."""
    from node.config import KEY_FILE
    from node.home import HomeError, load_key_file
    from node.p2p.secret import node_id_of

    home = Path(args.home)
    try:
        key = load_key_file(home / KEY_FILE)
        config = load_config(home)
    except (HomeError, ConfigError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    node_id = node_id_of(key.public_key)
    if args.json:
        print(json.dumps({"node_id": node_id, "peer_address": f"{node_id}@{config.host}:{config.p2p_port}"}))
    else:
        print(f"{node_id}@{config.host}:{config.p2p_port}")
    return 0


RESTART_FOR_STATE_SYNC = 75
"""``run_node``'s answer when the node stopped to state-sync (``ledger-node start`` then executes itself again)."""


async def run_node(home: Path, config: NodeConfig) -> int:
    import uvicorn

    from node.api.app import create_app
    from node.gc_policy import SURVIVOR_FREEZER, freeze_startup_heap, tune_gc
    from node.heap_policy import fix_mmap_threshold
    from node.memory import GC_PAUSES, log_memory_report
    from node.runtime import Node

    tune_gc(config.gc_gen0_threshold)
    fix_mmap_threshold(config.malloc_mmap_threshold)
    GC_PAUSES.install()
    if config.gc_freeze_survivors:
        SURVIVOR_FREEZER.install()
    from node.state_sync import StateSyncFailed, sync_home
    try:
        await sync_home(home, config)
    except StateSyncFailed as exc:
        log.critical("state sync failed: %s", exc)
        return 5
    node = Node(home, config)
    app = create_app(node)

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # SIGTERM/SIGINT stop the node cleanly instead of re-raising
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, node.request_stop)
            loop.add_signal_handler(signal.SIGUSR1, log_memory_report, node)
            yield

    server = _Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="warning",
                                    access_log=False, lifespan="off", timeout_keep_alive=30))
    try:  # both ports are bound before consensus starts: a taken port stops the node before it signs anything
        rest_socket = _bind(config.host, config.port)
        await node.bind()
    except OSError as exc:
        await node.stop()
        log.critical("cannot listen on %s (REST port %d, p2p port %d): %s; is another node running? change "
                     "port / p2p_port in config.toml", config.host, config.port, config.p2p_port, exc.strerror or exc)
        return 4
    node.start_consensus()
    if config.gc_gen0_threshold > 0:
        freeze_startup_heap()
    serve_task = asyncio.create_task(server.serve(sockets=[rest_socket]))
    stop_task = asyncio.create_task(node.wait_stopped())
    done, _ = await asyncio.wait({serve_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    try:
        await serve_task
    except Exception:  # the API server failed; the node still stops cleanly below
        log.exception("API server stopped with an error")
    stop_task.cancel()
    await node.stop()
    rest_socket.close()  # (inheritable: a restart for state sync must not carry it into the new process)
    if node.restart_for_state_sync:
        return RESTART_FOR_STATE_SYNC
    if node.fatal is not None:
        log.critical("node stopped on error: %s", node.fatal)
        return 3
    if serve_task in done and not server.started:
        log.critical("could not serve on %s:%d", config.host, config.port)
        return 4
    return 0


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (``OSError`` when taken), as uvicorn would make it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _run_loop(coro):
    """uvloop when installed (a faster event loop), the standard loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    if sys.version_info >= (3, 12):
        return asyncio.run(coro, loop_factory=uvloop.new_event_loop)
    return uvloop.run(coro)


def cmd_start(args: argparse.Namespace) -> int:
    home = Path(args.home)
    try:
        config = load_config(home, _overrides(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level, config.log_file)
    try:
        code = _run_loop(run_node(home, config))
    except Exception as exc:  # noqa: BLE001  (any startup failure: one clear logged line, not a traceback wall)
        log.critical("node failed: %s: %s", type(exc).__name__, exc)
        code = 1
    if code == RESTART_FOR_STATE_SYNC:  # everything is closed: start afresh, same process id, same arguments
        log.warning("restarting to state-sync: every peer pruned the blocks this node lacks")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    # The store, journal and signer are closed and synced by now; skip the interpreter's slow
    # and noisy teardown of uvicorn/plyvel objects (seconds of garbage collection per stop).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def cmd_status(args: argparse.Namespace) -> int:
    """A running node's ``GET /v1/status``, summed up in a few lines (``--json``: all of it); exit 1 when it
    does not answer."""
    import http.client
    import urllib.error
    import urllib.request

    if args.home is not None:
        try:
            config = load_config(Path(args.home))
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        url = f"http://{config.host}:{config.port}"
    else:
        url = args.node if "://" in args.node else f"http://{args.node}"
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/v1/status", timeout=max(0.1, args.timeout)) as response:
            status = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"error: no answer from a node at {url} ({reason}); is it running? (`ledger-node start --home DIR`)",
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    peers = status.get("peers", [])
    consensus = status.get("consensus", {})
    print(f"{status.get('node_name')} ({'validator' if status.get('is_validator') else 'full node'}) at {url}, "
          f"chain {status.get('chain_id')}")
    print(f"height {status.get('height')}, consensus height {consensus.get('height')} round {consensus.get('round')} "
          f"{consensus.get('step')}, catching up: {'yes' if status.get('catching_up') else 'no'}")
    print(f"peers up: {sum(1 for p in peers if p.get('up'))} of {len(peers)}"
          + "".join(f"\n  {p.get('name')}: {'up' if p.get('up') else 'down'}, height {p.get('height')}"
                    f"{'' if p.get('up') or not p.get('last_error') else ', ' + str(p.get('last_error'))}"
                    for p in peers))
    print(f"mempool: {status.get('mempool', {}).get('size')} transactions")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from node.config import DATA_DIR
    from node.ledger.errors import STORE_LOCKED, StoreError
    from node.ledger.store import Store

    if args.what == "tip" and args.height is not None:
        print(f"error: `show tip` shows the tip; for the block at height {args.height}: `ledger-node show block "
              f"--height {args.height} --home {args.home}`", file=sys.stderr)
        return 2
    home = Path(args.home)
    if not home.is_dir():  # checked first: opening would create an empty database (and call it "locked")
        print(f"error: no node home at {home}; run `ledger-node init` first", file=sys.stderr)
        return 1
    if not (home / DATA_DIR).is_dir():
        print(f"error: {home} holds no chain; run `ledger-node init` first", file=sys.stderr)
        return 1
    try:
        store = Store.open(str(home / DATA_DIR))
    except StoreError as exc:  # e.g. store-format: one line that says what to do, not a traceback
        hint = "; is the node running? stop the node first" if exc.code == STORE_LOCKED else ""
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 1
    try:
        height, app_hash = store.height, store.app_hash
        if app_hash is None:  # an empty store: no genesis yet
            print(f"error: {args.home} holds no chain; run `ledger-node init` first", file=sys.stderr)
            return 1
        out: dict = {"height": height, "app_hash": app_hash.hex(), "chain_id": store.chain_id}
        if args.what == "block" or (args.what is None and args.height is not None):
            h = args.height if args.height is not None else height
            block = store.get_block(h)
            if block is None:
                print(f"error: no block at height {h}", file=sys.stderr)
                return 1
            from node.api.views import block_json
            out = block_json(block, store.get_commit(h))
        print(json.dumps(out, indent=2))
    finally:
        store.close()
    return 0


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledger-node", description=__doc__)
    from node import release
    parser.add_argument("--version", action="version", version=f"ledger-node {release()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", help="the node's name in status and logs")
        p.add_argument("--host", help="address the REST API and the p2p port bind to (default 127.0.0.1)")
        p.add_argument("--port", type=int, help="REST API port (default 26657)")
        p.add_argument("--p2p-port", dest="p2p_port", type=int, help="peer transport port (default 26656)")
        p.add_argument("--peers", help="comma-separated persistent peers, NODEID@host:port (their p2p ports; "
                                       "`ledger-node id` prints a node's)")
        p.add_argument("--log-level", dest="log_level", help="DEBUG, INFO (default), WARNING or ERROR")
        p.add_argument("--log-file", dest="log_file", help="also log to this file")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any config key")

    p = sub.add_parser("init", help="create a node home with its LevelDB at height 0")
    p.add_argument("--home", required=True, help="the folder to make the node's home in")
    p.add_argument("--genesis", required=True, help="the genesis file of the chain (ledger-genesis new writes one)")
    p.add_argument("--key", help="validator key file to use instead of generating one")
    p.add_argument("--full-node", dest="full_node", action="store_true",
                   help="a node that follows the chain without voting (its key, new or --key, is not a validator)")
    p.add_argument("--force", action="store_true", help="overwrite an existing home's config and data")
    p.add_argument("--state-sync", dest="state_sync", action="store_true",
                   help="start by copying a recent snapshot from the peers (checked from the genesis) instead of "
                        "replaying every block (config state_sync = true)")
    p.add_argument("--from-snapshot", dest="from_snapshot", metavar="FILE",
                   help="start at the height of this snapshot file (`ledger-node snapshot export`), once it checks "
                        "out from the genesis: set changes, certificate, manifest, chunks, app hash")
    common(p)
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("start", help="run the node (REST API, peer transport, consensus, mempool, block sync)")
    p.add_argument("--home", required=True, help="the node's home (made by ledger-node init)")
    common(p)
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("id", help="print this node's peer address, NODEID@host:p2p_port")
    p.add_argument("--home", required=True, help="the node's home")
    p.add_argument("--json", action="store_true", help="node id and peer address as JSON")
    p.set_defaults(func=cmd_id)

    p = sub.add_parser("show", help="inspect a stopped node's store")
    p.add_argument("--home", required=True, help="the node's home")
    p.add_argument("what", choices=["tip", "block"], nargs="?", default=None,
                   help="the tip (height, app hash) or a block (default: tip, or block with --height)")
    p.add_argument("--height", type=int, help="the block's height (default: the tip's)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("status", help="ask a running node how it is: height, peers, consensus, catching up")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--home", help="the node's home (its REST address comes from config.toml)")
    where.add_argument("--node", help="the node's REST URL (http://host:port; host:port works too)")
    p.add_argument("--json", action="store_true", help="the node's whole GET /v1/status answer")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (default 5)")
    p.set_defaults(func=cmd_status)

    from node.validator_cli import add_validator_parser
    add_validator_parser(sub)
    from node.snapshot_cli import add_snapshot_parser
    add_snapshot_parser(sub)

    if "simulate" in (argv or sys.argv[1:2]):
        from simulation import add_simulate_arguments, run_simulate_command
        p = sub.add_parser("simulate", help="deterministic multi-node consensus simulation")
        add_simulate_arguments(p)
        p.set_defaults(func=run_simulate_command)
    else:
        sub.add_parser("simulate", help="deterministic multi-node consensus simulation (see --help)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
