"""Prometheus metrics of one node, in a registry of its own (so several nodes
can live in one test process)."""

from __future__ import annotations

import sys

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from node.memory import heap_usage, python_heap, resident_bytes


class NodeMetrics:
    """Counters the runtime updates; gauges read live values when scraped."""

    def __init__(self, node) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.height = Gauge("ledger_height", "Last committed block height", registry=r)
        self.round = Gauge("ledger_consensus_round", "Current consensus round", registry=r)
        self.round.set_function(lambda: node.driver.round)
        self.height.set_function(lambda: node.store.height)
        self.txs_committed = Counter("ledger_txs_committed", "Transactions committed by this node", registry=r)
        self.blocks_committed = Counter("ledger_blocks_committed", "Blocks committed by this node", registry=r)
        self.block_interval = Histogram("ledger_block_interval_seconds", "Time between commits",
                                        buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30), registry=r)
        self.decision_round = Histogram("ledger_decision_round", "Round in which each block was decided",
                                        buckets=(0, 1, 2, 3, 5, 10), registry=r)
        self.height_phase = Histogram("ledger_height_phase_seconds", "Time of each phase of a height on this "
                                      "node: wait, proposal, prevotes, precommits, consensus, apply "
                                      "(node.height_timeline)", labelnames=["phase"],
                                      buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5), registry=r)
        stalls = Gauge("ledger_loop_stalls", "Times the event loop was kept from running for at least 250 ms "
                       "(node.loop_watch)", registry=r)
        stalls.set_function(lambda: node.loop_watch.stalls.count)
        mempool_size = Gauge("ledger_mempool_size", "Pending transactions", registry=r)
        mempool_size.set_function(lambda: len(node.mempool))
        mempool_bytes = Gauge("ledger_mempool_bytes", "Pending transaction bytes", registry=r)
        mempool_bytes.set_function(lambda: node.mempool.total_bytes)
        peers = Gauge("ledger_peers_up", "Peers connected (authenticated peer links)", registry=r)
        peers.set_function(lambda: node.peers.peers_up)
        refused_txs = Gauge("ledger_p2p_rejected_txs", "Transactions peers sent that the mempool refused", registry=r)
        refused_txs.set_function(lambda: node.peers.rejected_txs)
        queued_txs = Gauge("ledger_p2p_txs_queued", "Peer transactions waiting for admission (node.p2p.tx_intake)",
                           registry=r)
        queued_txs.set_function(lambda: node.peers.tx_intake.queued)
        dropped_txs = Gauge("ledger_p2p_txs_dropped", "Peer transactions dropped unadmitted because their queue "
                            "was full", registry=r)
        dropped_txs.set_function(lambda: node.peers.tx_intake.dropped)
        r.register(_P2PCollector(node))
        r.register(_MemoryCollector(node))
        hits = Gauge("ledger_signature_cache_hits", "Signature checks answered from the cache", registry=r)
        hits.set_function(lambda: node.sig_cache.hits)
        misses = Gauge("ledger_signature_cache_misses", "Signature checks that ran", registry=r)
        misses.set_function(lambda: node.sig_cache.misses)
        evidence = Gauge("ledger_evidence", "Equivocations recorded", registry=r)
        evidence.set_function(lambda: len(node.evidence))
        rejected = Gauge("ledger_mempool_rejected", "Transactions refused by the mempool", registry=r)
        rejected.set_function(lambda: node.mempool.rejected)
        clients = Gauge("ledger_event_clients", "GET /v1/events streams connected", registry=r)
        clients.set_function(lambda: len(node.waiters.events.clients))
        cut = Gauge("ledger_event_clients_cut", "Event clients cut off because they fell too far behind",
                    registry=r)
        cut.set_function(lambda: node.waiters.events.overflows)
        refused = Gauge("ledger_event_clients_refused", "Event streams refused (max_event_clients)", registry=r)
        refused.set_function(lambda: node.waiters.events.refused)
        waiting = Gauge("ledger_waiting_reads", "Reads waiting for a min_height now", registry=r)
        waiting.set_function(lambda: node.waiters.height_waits)
        refused_waits = Gauge("ledger_waiting_reads_refused", "min_height reads refused at once (too many "
                              "waiting, or out of reach within the wait)", registry=r)
        refused_waits.set_function(lambda: node.waiters.refused_waits)

    def on_commit(self, block, round_: int, interval_s: float, phases: dict[str, float]) -> None:
        self.blocks_committed.inc()
        self.txs_committed.inc(len(block.txs))
        self.block_interval.observe(interval_s)
        self.decision_round.observe(round_)
        for phase, seconds in phases.items():
            self.height_phase.labels(phase).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _P2PCollector:
    """The switch's event counts and each peer's traffic, read when scraped."""

    def __init__(self, node) -> None:
        self.node = node

    def collect(self):
        switch = self.node.peers.switch
        events = CounterMetricFamily("ledger_p2p_events", "Peer connections refused at the handshake, dropped "
                                     "on the peer's fault, closed, and reads throttled", labels=["kind", "reason"])
        for (kind, reason), count in sorted(switch.events.items()):
            events.add_metric([kind, reason], count)
        yield events
        received = CounterMetricFamily("ledger_consensus_messages_received", "Consensus messages from peers by "
                                       "what became of them", labels=["verdict"])
        for verdict in ("accepted", "duplicate", "buffered", "stale", "dropped"):
            received.add_metric([verdict], self.node.consensus_io.received[verdict])
        yield received
        sent = CounterMetricFamily("ledger_p2p_sent_bytes", "Sealed bytes sent per peer (current connection)",
                                   labels=["peer"])
        got = CounterMetricFamily("ledger_p2p_received_bytes", "Sealed bytes received per peer (current "
                                       "connection)", labels=["peer"])
        malformed = CounterMetricFamily("ledger_p2p_malformed_messages", "Peer messages that did not decode "
                                        "(dropped), per peer (current connection)", labels=["peer"])
        dropped = CounterMetricFamily("ledger_p2p_queue_dropped", "Items dropped from a full send queue",
                                      labels=["peer", "channel"])
        for link in switch.links.values():
            conn = link.connection
            if conn is not None:
                sent.add_metric([link.name], conn.stream.bytes_sent)
                got.add_metric([link.name], conn.stream.bytes_received)
                malformed.add_metric([link.name], conn.malformed)
            for channel, count in link.outbox.dropped.items():
                dropped.add_metric([link.name, channel], count)
        yield sent
        yield got
        yield malformed
        yield dropped


class _MemoryCollector:
    """What holds the node's memory, read when scraped: resident memory by kind, the C heap, LevelDB's share
    of it, and what Python's own allocator holds."""

    def __init__(self, node) -> None:
        self.node = node

    def collect(self):
        yield _labelled("ledger_resident_bytes", "Resident memory of the node process: anon (heap and every other "
                        "private memory) and file (mapped files' pages)", "kind", resident_bytes())
        heap = heap_usage()
        if heap is not None:
            yield _labelled("ledger_heap_bytes", "The C allocator's bytes in use and freed but held, over all arenas "
                            "(mallinfo2)", "part", {"in_use": heap.in_use, "free": heap.free})
        yield GaugeMetricFamily("ledger_store_memory_bytes", "LevelDB's estimate of its memtables and block "
                                "cache (leveldb.approximate-memory-usage), part of the heap in use",
                                value=self.node.store.memory_bytes())
        yield GaugeMetricFamily("ledger_python_blocks", "Memory blocks Python's allocator has handed out "
                                "(sys.getallocatedblocks)", value=sys.getallocatedblocks())
        pyheap = python_heap()
        if pyheap is not None:
            yield _labelled("ledger_python_heap_bytes", "Python's small-object allocator: the arenas it has mapped, "
                            "and the bytes live objects hold in them", "part",
                            {"arenas": pyheap.arenas, "in_use": pyheap.in_use})


def _labelled(name: str, documentation: str, label: str, values: dict[str, int]) -> GaugeMetricFamily:
    """A gauge family with one sample per ``values`` item, labelled ``label``."""
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family
