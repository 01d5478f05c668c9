"""The devnet cluster library: a local network of real node processes.

One place for what ``ledger-devnet``, the bench, the fault drills and the
tests' helpers (``tests/netutil.py``) all do with a network:

- ``spec``: the nodes (``NodeSpec``: name, home, host, port), free ports,
  ``network.json`` (``load_network``, ``find_node``), ``devnet_params``;
- ``homes``: write every node's home, ``genesis.json`` and ``network.json``
  (``write_network``, ``write_multi_host_network``, ``write_homes``);
- ``processes``: start, signal and stop node processes by the pid in
  ``HOME/node.pid`` (``start_node``, ``signal_node``, ``stop_nodes``);
- ``netns``: a network namespace per node on a bridge (``ledger-devnet up --netns``), recorded in
  ``netns.json`` (``new_netns_network``, ``ensure``, ``teardown``);
- ``chain``: node status, ``wait_for_height`` and the ``same_chain`` check
  (same block hash and app hash on every node).
"""

from devnet.cluster.chain import (
    ChainCheck,
    HeightWait,
    chain_disagreements,
    fetch_chain,
    fetch_status,
    fetch_statuses,
    node_status,
    same_chain,
    same_chain_async,
    statuses,
    wait_for_height,
    wait_for_height_async,
)
from devnet.cluster.homes import (
    compact_store,
    copy_home,
    write_genesis_json,
    write_homes,
    write_multi_host_network,
    write_network,
)
from devnet.cluster.processes import (
    node_command,
    node_running,
    pid_alive,
    process_paused,
    read_pid,
    signal_node,
    start_node,
    start_nodes,
    start_process,
    stop_node,
    stop_nodes,
    wait_stopped,
)
from devnet.cluster.spec import (
    LOG_FILE,
    NETWORK_FILE,
    PID_FILE,
    STDOUT_FILE,
    DevnetError,
    NodeSpec,
    devnet_params,
    find_node,
    free_ports,
    is_loopback,
    load_network,
    local_specs,
    multi_host_specs,
    network_info,
    pick_ports,
    ports_free,
)

__all__ = [
    "ChainCheck", "DevnetError", "HeightWait", "LOG_FILE", "NETWORK_FILE", "NodeSpec", "PID_FILE", "STDOUT_FILE",
    "chain_disagreements", "compact_store", "copy_home", "devnet_params", "fetch_chain", "fetch_status",
    "fetch_statuses", "find_node", "free_ports", "is_loopback", "load_network", "local_specs", "multi_host_specs",
    "network_info", "node_command", "node_running", "node_status", "pick_ports", "pid_alive", "ports_free",
    "process_paused", "read_pid", "same_chain", "same_chain_async", "signal_node", "start_node", "start_nodes",
    "start_process", "statuses", "stop_node", "stop_nodes", "wait_for_height", "wait_for_height_async",
    "wait_stopped", "write_genesis_json", "write_homes", "write_multi_host_network", "write_network",
]
