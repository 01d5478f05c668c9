"""The bench's options: the command line's arguments, their checks, and the load they imply.

``transfer_budget`` says how many transfers a run may need (pre-signed
before the clock starts), ``default_slots`` how many funded outputs carry
them, ``bench_params`` the consensus parameters of the fresh devnet.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from devnet.cluster import DevnetError, devnet_params
from node.config import NodeConfig


class BenchError(RuntimeError):
    """The bench could not run (not: the network did badly; that is a result)."""


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bench`` options (shared by ``ledger-devnet bench`` and ``python -m devnet.bench``)."""
    g = parser.add_argument_group("network")
    g.add_argument("--validators", type=int, default=4, help="validators of the fresh devnet (default 4)")
    g.add_argument("--home", type=Path, default=None,
                   help="where the fresh devnet lives (default: a temporary directory, removed afterwards)")
    g.add_argument("--keep", action="store_true", help="keep the devnet's directory (with --home it is always kept)")
    g.add_argument("--attach", type=Path, default=None, metavar="DIR",
                   help="use the running devnet in DIR instead of starting one (funds its slots from --faucet)")
    g.add_argument("--faucet", type=Path, default=None, metavar="FILE",
                   help="with --attach: an unencrypted wallet file holding the faucet key "
                        "(default: DIR/wallets/faucet.json or any faucet*.json under DIR)")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="node config override for the fresh devnet, e.g. --set gossip_flush_ms=10")
    g.add_argument("--netns", action="store_true",
                   help="each node of the fresh devnet in its own network namespace with its own address on a "
                        "bridge, as machines on a LAN (needs root and the `ip` command)")
    g.add_argument("--delay-ms", type=int, default=None, metavar="D",
                   help="hold each outgoing peer packet back D ms (node config p2p_delay_ms; a WAN on one machine)")
    g.add_argument("--jitter-ms", type=int, default=None, metavar="J",
                   help="up to J ms more or less per packet, with --delay-ms (node config p2p_jitter_ms)")
    g.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="consensus parameter of the fresh devnet's genesis, e.g. --param max_block_txs=2000 "
                        "(default: the devnet's timeouts and the genesis defaults)")
    load = parser.add_argument_group("load")
    rate = load.add_mutually_exclusive_group()
    rate.add_argument("--rate", type=float, default=None, help="offered transactions per second (default 200)")
    rate.add_argument("--max", action="store_true",
                      help="ramp the rate up to the highest one the network sustains, then measure at it for "
                           "--duration: the rate reported is the highest that holds for the whole --duration with "
                           "p99 latency at most --target-p99 (1.5 s) and p50 at most --target-p50, nothing lost")
    load.add_argument("--duration", type=float, default=20.0, help="measured seconds (after the warm-up)")
    load.add_argument("--warmup", type=float, default=None, help="seconds of load before measuring (default 3)")
    load.add_argument("--accounts", type=int, default=100, help="keys that own the funded outputs (default 100)")
    load.add_argument("--slots", type=int, default=None,
                   help="funded outputs used as independent payment chains (default: 8 s worth of the top rate)")
    load.add_argument("--utxos", type=int, default=0, help="extra unspent outputs preloaded in genesis (scale test)")
    load.add_argument("--steady-state", action="store_true",
                      help="each transfer pays its amount less the fee back to its owner (one output), so the UTXO "
                           "set keeps its size and only the blocks grow (for pruning: retain_blocks)")
    load.add_argument("--batch", type=int, default=100, help="most transactions per POST /v1/txs/batch (default 100)")
    load.add_argument("--inflight", type=int, default=4, help="concurrent requests per node (default 4)")
    m = parser.add_argument_group("--max search")
    m.add_argument("--start-rate", type=float, default=300.0, help="first rate of the ramp (default 300)")
    m.add_argument("--rate-cap", type=float, default=8000.0, help="highest rate the ramp tries (default 8000)")
    m.add_argument("--step", type=float, default=8.0, help="seconds per ramp step (default 8)")
    m.add_argument("--attempts", type=int, default=3,
                   help="if the found rate does not hold for --duration, measure again 10%% lower, "
                        "at most this many times in all (default 3)")
    m.add_argument("--factor", type=float, default=1.25, help="rate multiplier per ramp step (default 1.25)")
    m.add_argument("--target-p50", type=float, default=1.0, help="a rate is sustained if p50 latency stays under "
                                                                 "this (seconds, default 1.0)")
    m.add_argument("--target-p99", type=float, default=1.5, help="... and p99 latency under this (seconds, "
                                                                 "default 1.5)")
    o = parser.add_argument_group("output")
    o.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the results as JSON")
    o.add_argument("--plot", type=Path, default=None, metavar="FILE.png", help="plot throughput and latency")
    o.add_argument("--quiet", action="store_true", help="no live display; just the final table")
    o.add_argument("--verify-seconds", type=float, default=1.0, help="time spent measuring the verify ceiling")


@dataclass
class Options:
    validators: int = 4
    home: Path | None = None
    keep: bool = False
    attach: Path | None = None
    faucet: Path | None = None
    overrides: dict[str, object] = field(default_factory=dict)
    netns: bool = False
    params: dict[str, int] = field(default_factory=dict)
    rate: float = 200.0
    max: bool = False
    duration: float = 20.0
    warmup: float = 3.0
    accounts: int = 100
    slots: int | None = None
    utxos: int = 0
    steady_state: bool = False
    """Transfers with one output back to their owner: the UTXO set keeps its size."""
    batch: int = 100
    inflight: int = 4
    start_rate: float = 300.0
    rate_cap: float = 3000.0
    step: float = 8.0
    attempts: int = 3
    factor: float = 1.25
    target_p50: float = 1.0
    target_p99: float = 1.5
    json: Path | None = None
    plot: Path | None = None
    quiet: bool = False
    verify_seconds: float = 1.0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        # a bench measures nodes as deployed: the node's own snapshot interval, not the devnet's short one
        overrides: dict[str, object] = {"snapshot_interval": NodeConfig().snapshot_interval}
        for item in getattr(args, "set", None) or []:
            if "=" not in item:
                raise BenchError(f"--set expects KEY=VALUE, got {item!r}")
            key, value = item.split("=", 1)
            overrides[key.strip().replace(".", "_").replace("-", "_")] = value
        for flag, key in (("delay_ms", "p2p_delay_ms"), ("jitter_ms", "p2p_jitter_ms")):
            value = getattr(args, flag, None)
            if value is not None:
                if value < 0:
                    raise BenchError(f"--{flag.replace('_', '-')} must not be negative")
                overrides[key] = value
        params: dict[str, int] = {}
        for item in getattr(args, "param", None) or []:
            key, sep, value = item.partition("=")
            if not sep or not value.strip().lstrip("-").isdigit():
                raise BenchError(f"--param expects KEY=INTEGER, got {item!r}")
            params[key.strip().replace("-", "_")] = int(value)
        opts = cls(
            params=params,
            validators=args.validators, home=args.home, keep=args.keep, attach=args.attach, faucet=args.faucet,
            overrides=overrides, netns=bool(getattr(args, "netns", False)),
            rate=args.rate if args.rate is not None else 200.0, max=args.max,
            duration=args.duration, warmup=args.warmup if args.warmup is not None else 3.0,
            accounts=args.accounts, slots=args.slots, utxos=args.utxos,
            steady_state=args.steady_state, batch=args.batch, inflight=args.inflight,
            start_rate=args.start_rate, rate_cap=args.rate_cap, step=args.step, factor=args.factor,
            attempts=max(1, args.attempts),
            target_p50=args.target_p50, target_p99=args.target_p99, json=args.json, plot=args.plot, quiet=args.quiet,
            verify_seconds=args.verify_seconds)
        opts.check()
        return opts

    def check(self) -> None:
        if self.validators < 1:
            raise BenchError("--validators must be at least 1")
        if self.duration <= 0 or self.warmup < 0:
            raise BenchError("--duration must be positive and --warmup not negative")
        if self.rate <= 0 or self.start_rate <= 0 or self.rate_cap < self.start_rate or self.factor <= 1:
            raise BenchError("rates must be positive, --rate-cap >= --start-rate and --factor > 1")
        if self.accounts < 2:
            raise BenchError("--accounts must be at least 2 (transfers pay another account)")
        if self.utxos < 0 or self.batch < 1 or self.inflight < 1:
            raise BenchError("--utxos must not be negative; --batch and --inflight must be at least 1")
        if self.netns:
            if self.attach is not None:
                raise BenchError("--netns makes a fresh devnet; with --attach, run `ledger-devnet up --netns` first")
            from devnet.cluster.netns import check_available

            try:
                check_available()
            except DevnetError as exc:
                raise BenchError(str(exc)) from None

    @property
    def top_rate(self) -> float:
        return self.rate_cap if self.max else self.rate

    def ramp_rates(self) -> list[float]:
        rates: list[float] = []
        r = self.start_rate
        while r < self.rate_cap:
            rates.append(round(r))
            r *= self.factor
        rates.append(round(self.rate_cap))
        return rates


# --------------------------------------------------------------------------- the load a run implies


def default_slots(opts: Options) -> int:
    if opts.slots is not None:
        return max(opts.slots, 1)
    return max(200, int(opts.top_rate * 8))


def transfer_budget(opts: Options) -> tuple[int, int]:
    """(transfers to pre-sign before the first clock, transfers the whole run may need)."""
    measured = opts.top_rate * (opts.warmup + opts.duration)
    if not opts.max:
        first = int(measured * 1.05) + opts.batch
        return first, first
    ramp = sum(r * opts.step for r in opts.ramp_rates()) + 3 * opts.rate_cap * opts.step
    return int(ramp * 1.05) + opts.batch, int((ramp + opts.attempts * measured) * 1.1) + opts.batch



def bench_params(overrides: dict[str, int] | None = None):
    """The devnet's consensus parameters, with ``--param`` overrides."""
    params = devnet_params()
    try:
        return dataclasses.replace(params, **(overrides or {}))
    except TypeError as exc:
        names = ", ".join(f.name for f in dataclasses.fields(params))
        raise BenchError(f"unknown consensus parameter in --param ({exc}); known: {names}") from None
