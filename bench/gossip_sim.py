"""Gossip convergence and bandwidth, simulated, beside Serf's convergence model.

    python bench/gossip_sim.py                 # N = 100, 1000, 5000, no loss
    python bench/gossip_sim.py --loss 0.1 --sizes 100 1000 --seeds 1 2 3

For each N a converged cluster of real trimesh.discovery members (sealed AES-GCM packets,
memberlist LAN timing) runs in virtual time (trimesh.testing.SimCluster); after a warm-up a new
member joins through one seed, and the script records when each member first learns of it.
Printed per N: the time for 50 %, 99 % and 99.99 % of the members (median over seeds, with the
worst seed), the same quantiles from Serf's convergence model for the same fanout, interval and
loss, the bytes each member sends per second during the convergence window and while idle, and
the model's bandwidth estimate. docs/gossip.md explains the model.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

from trimesh.discovery import GossipConfig
from trimesh.testing import SimCluster, SimNetwork

QUANTILES = (0.50, 0.99, 0.9999)


def serf_model_time(n: int, fraction: float, *, fanout: int, interval: float,
                    loss: float = 0.0, fail: float = 0.0) -> float:
    """Serf's simulator (hashicorp/serf website _simulator.js): logistic infection with
    ``contact = fanout/n · (1 − loss)(1 − fail) · 0.5``; the infected fraction after round ``x`` is
    ``1 / (1 + (n + 1)·e^(−contact·n·x))``; the answer is the first whole round reaching it."""
    contact = fanout / n * (1 - loss) * (1 - fail) * 0.5
    rounds = math.log((n + 1) * fraction / (1 - fraction)) / (contact * n)
    return math.ceil(rounds - 1e-9) * interval


def serf_model_bandwidth(*, fanout: int, interval: float, packet: int = 1400) -> float:
    """Serf's estimate (bytes/s per member): full packets to ``fanout`` members each round, ×2."""
    return packet * fanout / interval * 2


def bytes_sent(cluster: SimCluster) -> int:
    return sum(n.counters["bytes_sent"] + n.counters["stream_bytes_sent"]
               for n in cluster.nodes.values())


def run_once(n: int, seed: int, loss: float) -> dict:
    network = SimNetwork(seed, loss=loss)
    built = time.perf_counter()
    cluster = SimCluster.converged(n, seed=seed, network=network)
    build_s = time.perf_counter() - built
    started = time.perf_counter()
    cluster.run_for(1.0)
    idle_from, idle_bytes = cluster.now, bytes_sent(cluster)
    cluster.run_for(2.0)
    idle_rate = (bytes_sent(cluster) - idle_bytes) / (cluster.now - idle_from) / n
    learned: dict[str, float] = {}

    def listener(now, name, event):
        if getattr(event, "kind", None) == "join" and event.member.name == "newcomer":
            learned.setdefault(name, now)
    cluster.listeners.append(listener)
    t0, b0 = cluster.now, bytes_sent(cluster)
    cluster.add_node("newcomer")
    cluster.run_until(t0 + 30.0, until=lambda: len(learned) >= n, check_every=0.05)
    window = cluster.now - t0
    times = sorted(t - t0 for t in learned.values())
    out = {"build_s": build_s, "run_s": time.perf_counter() - started,
           "reached": len(learned), "idle_rate": idle_rate,
           "rate": (bytes_sent(cluster) - b0) / window / (n + 1),
           "events": cluster.events_processed}
    for q in QUANTILES:
        k = math.ceil(q * n)
        out[q] = times[k - 1] if len(times) >= k else math.inf
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--loss", type=float, default=0.0)
    args = parser.parse_args(argv)
    cfg = GossipConfig()
    fan, ivl = cfg.gossip_nodes, cfg.gossip_interval
    print(f"fanout {fan}, gossip interval {ivl} s, probe {cfg.probe_interval} s, loss {args.loss:.0%}, "
          f"seeds {args.seeds}")
    print(f"Serf model bandwidth estimate: {serf_model_bandwidth(fanout=fan, interval=ivl):.0f} B/s "
          f"per member (full 1400 B packets, both directions)")
    header = ("N", "50% sim", "99% sim", "99.99% sim", "worst 99.99%", "50% Serf", "99% Serf",
              "99.99% Serf", "B/s/member join", "B/s/member idle", "wall s")
    print(" | ".join(header))
    for n in args.sizes:
        runs = [run_once(n, seed, args.loss) for seed in args.seeds]
        med = {q: statistics.median(r[q] for r in runs) for q in QUANTILES}
        worst = max(r[0.9999] for r in runs)
        model = {q: serf_model_time(n, q, fanout=fan, interval=ivl, loss=args.loss)
                 for q in QUANTILES}
        rate = statistics.median(r["rate"] for r in runs)
        idle = statistics.median(r["idle_rate"] for r in runs)
        wall = sum(r["build_s"] + r["run_s"] for r in runs)
        print(f"{n} | {med[0.5]:.2f} s | {med[0.99]:.2f} s | {med[0.9999]:.2f} s | {worst:.2f} s | "
              f"{model[0.5]:.1f} s | {model[0.99]:.1f} s | {model[0.9999]:.1f} s | "
              f"{rate:.0f} | {idle:.0f} | {wall:.1f}", flush=True)


if __name__ == "__main__":
    main()
