"""Prometheus metrics of one node, in a registry of its own (so several nodes
can live in one test process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


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
        mempool_size = Gauge("ledger_mempool_size", "Pending transactions", registry=r)
        mempool_size.set_function(lambda: len(node.mempool))
        mempool_bytes = Gauge("ledger_mempool_bytes", "Pending transaction bytes", registry=r)
        mempool_bytes.set_function(lambda: node.mempool.total_bytes)
        peers = Gauge("ledger_peers_up", "Peers answering gossip", registry=r)
        peers.set_function(lambda: node.gossip.peers_up)
        refused_txs = Gauge("ledger_gossip_rejected_txs", "Gossiped transactions a peer refused (dropped)", registry=r)
        refused_txs.set_function(lambda: node.gossip.rejected_txs)
        refused_messages = Gauge("ledger_gossip_rejected_messages", "Consensus messages a peer refused (dropped)",
                                 registry=r)
        refused_messages.set_function(lambda: node.gossip.rejected_messages)
        hits = Gauge("ledger_signature_cache_hits", "Signature checks answered from the cache", registry=r)
        hits.set_function(lambda: node.sig_cache.hits)
        misses = Gauge("ledger_signature_cache_misses", "Signature checks that ran", registry=r)
        misses.set_function(lambda: node.sig_cache.misses)
        evidence = Gauge("ledger_evidence", "Equivocations recorded", registry=r)
        evidence.set_function(lambda: len(node.evidence))
        rejected = Gauge("ledger_mempool_rejected", "Transactions refused by the mempool", registry=r)
        rejected.set_function(lambda: node.mempool.rejected)

    def on_commit(self, block, round_: int, interval_s: float) -> None:
        self.blocks_committed.inc()
        self.txs_committed.inc(len(block.txs))
        self.block_interval.observe(interval_s)
        self.decision_round.observe(round_)

    def render(self) -> bytes:
        return generate_latest(self.registry)
