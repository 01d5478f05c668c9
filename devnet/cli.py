"""``ledger-devnet``: run, inspect and perturb a local network of validators.

    ledger-devnet up                 4 validators on loopback, a funded faucet wallet, height >= 1
    ledger-devnet up --netns         the same, each node in its own network namespace on a bridge (root, `ip`)
    ledger-devnet status [--json]    every node: pid, running, height, app hash, peers
    ledger-devnet logs NODE [-f]     a node's log
    ledger-devnet kill|stop|start|pause|resume NODE
    ledger-devnet url NODE           a node's REST URL (for scripts: curl "$(ledger-devnet url validator-1)/v1/status")
    ledger-devnet down               stop every node (data kept: `up` resumes, `up --fresh` starts over);
                                     with --netns, also remove its namespaces, veths and bridge
    ledger-devnet init --validators N --hosts h1,h2,... --out DIR
                                     homes for one network spread over several machines
    ledger-devnet bench ... / drill ...   benchmark and fault drills (devnet/bench/, devnet/drill/)

NODE is a node name (validator-0) or its index (0).  The devnet lives in
``--home`` (default ./.devnet): one folder per node (config, key, LevelDB,
node.log, node.pid), genesis.json, network.json and wallets/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from devnet.cli_args import PLUGINS, build_command_parser, run_plugin
from devnet.cli_common import (  # noqa: F401  (re-exported: tests and plugins use them from here)
    DEFAULT_BASE_PORT,
    DEFAULT_HOME,
    START_TIMEOUT_S,
    UP_TIMEOUT_S,
    WALLETS_DIR,
    _specs,
    console,
    fail,
)
from devnet.cluster import (
    NETWORK_FILE,
    DevnetError,
    NodeSpec,
    devnet_params,
    is_loopback,
    load_network,
    netns,
    network_info,
    pid_alive,
    read_pid,
    start_nodes,
    statuses,
    stop_nodes,
    wait_for_height,
    write_homes,
    write_multi_host_network,
    write_network,
)
from devnet.node_commands import start_and_report

# --------------------------------------------------------------------------- up


def _looks_like_devnet(home: Path) -> bool:
    return (home / NETWORK_FILE).exists()


WALLETS_MADE_FILE = ".made-by-devnet"
"""In ``HOME/wallets/``: the wallet files ``up`` wrote (``--fresh`` deletes only those without asking)."""


def wallets_not_made_here(home: Path) -> list[Path]:
    """Files in the devnet's wallets folder that ``up`` did not write (a user's own wallets, say)."""
    folder = home / WALLETS_DIR
    if not folder.is_dir():
        return []
    try:
        made = set(json.loads((folder / WALLETS_MADE_FILE).read_text()))
    except (OSError, ValueError, TypeError):  # a devnet from before the record: the names `up` gives
        from genesis.build import DEMO_WALLET_NAMES, FAUCET_WALLET

        made = {f"{name}.json" for name in (FAUCET_WALLET, *DEMO_WALLET_NAMES)}
    from wallet.trust import CHAIN_FILE_SUFFIX

    ours = made | {name.removesuffix(".json") + CHAIN_FILE_SUFFIX for name in made} | {WALLETS_MADE_FILE}
    return sorted(p for p in folder.iterdir() if p.name not in ours)


def wipe_home(home: Path, keep_others: bool = False) -> None:
    """Stop the devnet in ``home`` and delete it; refuses a folder that is not a devnet, and one whose wallets
    folder holds files ``up`` did not write unless ``keep_others`` says they may go."""
    if not home.exists():
        return
    if not _looks_like_devnet(home):
        if not home.is_dir() or any(home.iterdir()):
            raise DevnetError(f"{home} exists and is not a devnet (no {NETWORK_FILE}); refusing to delete it")
        return
    others = wallets_not_made_here(home)
    if others and not keep_others:
        listed = ", ".join(str(p) for p in others[:10]) + (" ..." if len(others) > 10 else "")
        raise DevnetError(f"{home / WALLETS_DIR} holds files this devnet did not write: {listed}. Move them "
                          f"elsewhere, or run `ledger-devnet up --fresh --delete-wallets` to delete them too")
    stop_nodes(load_network(home))
    netns.teardown(home)
    shutil.rmtree(home)


def write_wallets(home: Path, wallets: dict[str, bytes], genesis) -> dict[str, Path]:
    """One unencrypted wallet file per funded devnet wallet, already trusting this genesis."""
    from wallet.keystore import create_keystore
    from wallet.trust import TrustedChain, pin_chain

    chain = TrustedChain.of(genesis)
    out = {}
    for name, key in wallets.items():
        path = home / WALLETS_DIR / f"{name}.json"
        store = create_keystore(path, key, None, name=name, overwrite=True)
        pin_chain(store, chain)
        out[name] = path
    (home / WALLETS_DIR / WALLETS_MADE_FILE).write_text(json.dumps(sorted(p.name for p in out.values())))
    return out


def cmd_up(args: argparse.Namespace) -> int:
    started_at = time.monotonic()
    home = Path(args.home)
    if _looks_like_devnet(home) and not args.fresh:
        info = network_info(home)
        if info.get("multi_host"):
            return fail(f"{home} was written by `ledger-devnet init` for several machines: start each node on its "
                        f"own machine with `ledger-node start --home HOME`", 2)
        specs = load_network(home)
        running = [s for s in specs if pid_alive(read_pid(s.home))]
        if len(running) == len(specs):
            print(f"devnet in {home} is already running ({len(specs)} nodes up); left as it is. "
                  f"See `ledger-devnet status`; `ledger-devnet up --fresh` recreates it.")
            return 0
        if running:
            missing = [s for s in specs if s not in running]
            print(f"devnet in {home}: {len(running)} of {len(specs)} nodes up; starting the others "
                  f"({', '.join(s.name for s in missing)})")
            return start_and_report(missing, args.timeout)
        try:
            _check_stores(specs)
        except DevnetError as exc:
            return fail(str(exc), 2)
        if args.netns and netns.load_layout(home) is None:
            print(f"note: the devnet in {home} was made without --netns and stays on loopback "
                  f"(`up --fresh --netns` recreates it in namespaces)")
        netns.ensure(home)  # a stopped netns devnet: its namespaces again (`down` removed them)
        print(f"starting the existing devnet in {home} (its chain is kept; `up --fresh` starts over)")
        start_nodes(specs)
    else:
        try:
            if args.netns:
                netns.check_available()  # before anything is wiped or written
            wipe_home(home, keep_others=args.delete_wallets) if args.fresh else _check_empty(home)
        except DevnetError as exc:
            return fail(str(exc), 2)
        from genesis.build import make_devnet_genesis

        genesis, validator_keys, wallets = make_devnet_genesis(args.validators,
                                                               chain_id=args.chain_id or new_devnet_chain_id(),
                                                               demo_wallets=args.demo_wallets,
                                                               params=devnet_params())
        if args.netns:
            specs = netns.new_netns_network(home, list(validator_keys), args.base_port or DEFAULT_BASE_PORT)
            try:
                netns.ensure(home)
                write_homes(home, genesis, validator_keys, specs)
            except BaseException:
                netns.teardown(home)
                (home / netns.NETNS_FILE).unlink(missing_ok=True)
                raise
        else:
            specs = write_network(home, genesis, validator_keys, base_port=args.base_port)
        write_wallets(home, wallets, genesis)
        start_nodes(specs)
    waited = wait_for_height(specs, 1, args.timeout, status_timeout_s=0.5)
    elapsed = time.monotonic() - started_at
    if not waited:
        hint = "" if waited.exited else "; see `ledger-devnet logs NODE`"
        return fail(f"{waited.problem}{hint} (nodes left running; `ledger-devnet down` stops them)")
    show_up(home, specs, elapsed)
    return 0


def new_chain_id() -> str:
    """``ledger-`` and 8 random hex digits: a network written by ``init`` is a chain of its own by name."""
    import secrets

    return f"ledger-{secrets.token_hex(4)}"


def new_devnet_chain_id() -> str:
    """``devnet-`` and 8 random hex digits: every devnet made by ``up`` is its own chain, by name too, so a
    wallet of one devnet can tell a node of another apart (its genesis hash differs anyway)."""
    import secrets

    return f"devnet-{secrets.token_hex(4)}"


def _check_stores(specs: list[NodeSpec]) -> None:
    """Refuse, in one line and before any node starts, stores this release cannot read (``store-format``)."""
    from node.config import DATA_DIR
    from node.ledger.errors import STORE_FORMAT, StoreError
    from node.ledger.store import Store

    for spec in specs:
        try:
            Store.open(str(spec.home / DATA_DIR)).close()
        except StoreError as exc:
            if exc.code == STORE_FORMAT:
                raise DevnetError(f"{spec.name}: {exc}") from None


def _check_empty(home: Path) -> None:
    if home.exists() and not home.is_dir():
        raise DevnetError(f"{home} is a file, not a folder; choose another --home")
    if home.exists() and any(home.iterdir()):
        raise DevnetError(f"{home} exists and is not a devnet (no {NETWORK_FILE}); choose another --home")


def show_up(home: Path, specs: list[NodeSpec], elapsed: float) -> None:
    from rich.table import Table

    from genesis.document import load_genesis
    from node.crypto import encode_address
    from wallet.amounts import format_coins
    from wallet.keystore import load_keystore

    out = console()
    nodes = Table(title=f"devnet {home}", title_justify="left")
    for col in ("node", "REST URL", "validator address", "pid", "height"):
        nodes.add_column(col, no_wrap=True)
    for spec, st in zip(specs, statuses(specs, 1.0), strict=True):
        nodes.add_row(spec.name, spec.url, (st or {}).get("validator_address", "?"), str(read_pid(spec.home)),
                      str((st or {}).get("height", "?")))
    out.print(nodes)
    genesis = load_genesis(home / "genesis.json")
    funds = {encode_address(a.address): a.amount for a in genesis.allocations}
    wallets = Table(title="wallets (unencrypted, devnet only)", title_justify="left")
    for col in ("wallet", "address", "genesis coins", "file"):
        wallets.add_column(col, no_wrap=True)
    paths = [p for p in (home / WALLETS_DIR).glob("*.json") if not p.name.endswith(".chain.json")]
    for path in sorted(paths, key=lambda p: (p.stem != "faucet", p.stem)):
        store = load_keystore(path)
        wallets.add_row(store.name, store.address, format_coins(funds.get(store.address, 0)), str(path))
    out.print(wallets)
    from genesis.document import genesis_hash

    print(f"chain {genesis.chain_id}, genesis {genesis_hash(genesis).hex()}")
    full = sum(1 for s in specs if s.role != "validator")
    print(f"devnet up: {len(specs) - full} validators{f' and {full} full nodes' if full else ''} at height >= 1 in "
          f"{elapsed:.1f} s")
    print(f"try: ledger-wallet --wallet {home / WALLETS_DIR / 'faucet.json'} balance")


# --------------------------------------------------------------------------- init (several machines)


def cmd_init(args: argparse.Namespace) -> int:
    from genesis.build import make_devnet_genesis

    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    if not hosts:
        return fail("--hosts needs at least one host", 2)
    out = Path(args.out)
    try:
        _check_empty(out)
    except DevnetError as exc:
        return fail(str(exc), 2)
    genesis, validator_keys, wallets = make_devnet_genesis(
        args.validators, chain_id=new_chain_id() if args.chain_id is None else args.chain_id,
        demo_wallets=0)
    specs = write_multi_host_network(out, genesis, validator_keys, hosts, base_port=args.base_port)
    write_wallets(out, wallets, genesis)
    for spec in specs:
        print(f"{spec.name}: {spec.home}  binds {spec.host}:{spec.port} (REST), {spec.host}:{spec.p2p_port} (p2p)")
    print(f"wrote {len(specs)} node homes, genesis.json and wallets/faucet.json (unencrypted) to {out}")
    print("copy each home to its machine and run: ledger-node start --home HOME")
    if not all(is_loopback(h) for h in hosts):
        print("(ledger-devnet does not start nodes bound to non-loopback addresses)")
    return 0


# --------------------------------------------------------------------------- parser (devnet/cli_args.py)


def build_parser() -> argparse.ArgumentParser:
    """The ``ledger-devnet`` parser, with this module's text as its description and ``up``/``init`` handled here."""
    return build_command_parser(__doc__, cmd_up, cmd_init)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 3 and argv[0] == "--home" and argv[2] in PLUGINS:  # `--home DIR bench ...`: the plugin's own
        argv = [argv[2], "--home", argv[1], *argv[3:]]
    elif len(argv) >= 2 and argv[0].startswith("--home=") and argv[1] in PLUGINS:
        argv = [argv[1], argv[0], *argv[2:]]
    if argv and argv[0] in PLUGINS:
        return run_plugin(argv[0], argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    from genesis.errors import GenesisError

    try:
        return args.func(args)
    except netns.NetnsUnavailable as exc:
        return fail(str(exc), 2)
    except DevnetError as exc:
        return fail(str(exc))
    except GenesisError as exc:  # e.g. a chain id the genesis refuses: one line, not a traceback
        return fail(str(exc), 2)


if __name__ == "__main__":
    sys.exit(main())
