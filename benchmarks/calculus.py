"""Calculus throughput: device-rounds per second of distance_to and of the SCR pattern on random geometric graphs.

Prints a table; also times the same gradient as bare numpy array code (the ceiling for any VM) in the same run.
    python benchmarks/calculus.py [--sizes 100,1000,10000,100000] [--backend numpy|torch] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from fieldlearn import Network, RoundVM, sense
from fieldlearn.calculus.runner import inbox_of
from fieldlearn.lib import collect, distance_to, elect_leaders


def gradient_program():
    return distance_to(sense("source"))


def scr_program():
    leader, potential = elect_leaders(radius=0.2)
    return collect(potential, 1.0, op="sum")


def bare_numpy_gradient(graph, source, rounds: int) -> float:
    """The same share-based gradient as hand-written array code: seconds per round."""
    rows = graph.rows()
    d = np.full(graph.n_devices, np.inf)
    nonempty = graph.degree() > 0
    starts = graph.indptr[:-1][nonempty]
    t0 = time.perf_counter()
    for _ in range(rounds):
        cand = d[graph.neighbours] + graph.distance
        best = np.full(graph.n_devices, np.inf)
        best[nonempty] = np.minimum.reduceat(cand, starts)
        d = np.where(source, 0.0, best)
    del rows
    return (time.perf_counter() - t0) / rounds


def time_vm(program, net: Network, rounds: int, backend: str, device: str | None) -> float:
    """Seconds per synchronous round of `program` on `net` (after warm-up rounds)."""
    vm = RoundVM(program, backend=backend, device=device)
    vm.sensors = {k: vm.backend.asarray(v) for k, v in net.sensors.items()}
    ids = np.arange(net.n_devices)
    inbox = inbox_of(net.graph, ids)
    if vm.backend.name == "torch":
        be = vm.backend
        from fieldlearn import Inbox

        inbox = Inbox(be.index(inbox.indptr), be.index(inbox.neighbours), {k: be.asarray(v) for k, v in inbox.edge_data.items()})
        ids = be.index(ids)
    for _ in range(3):
        vm.round(ids, inbox)
    _sync(vm)
    t0 = time.perf_counter()
    for _ in range(rounds):
        vm.round(ids, inbox)
    _sync(vm)
    return (time.perf_counter() - t0) / rounds


def _sync(vm: RoundVM) -> None:
    if vm.backend.name == "torch" and vm.backend.device.type == "cuda":
        vm.backend.torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100,1000,10000,100000")
    p.add_argument("--backend", default="numpy", choices=["numpy", "torch"])
    p.add_argument("--device", default=None, help="cpu or cuda (torch backend)")
    p.add_argument("--budget", type=float, default=2.0, help="seconds of rounds per measurement")
    args = p.parse_args()
    backend = "torch" if args.device == "cuda" else args.backend
    print(f"machine: {platform.processor() or platform.machine()}, backend {backend} {args.device or 'cpu'}")
    print(f"{'devices':>8} {'links/dev':>9} {'program':>10} {'ms/round':>9} {'dev-rounds/s':>14} {'ns/link':>8} {'bare numpy':>14}")
    for n in (int(s) for s in args.sizes.split(",")):
        net = Network.random_geometric(n, mean_degree=8.0, seed=1)
        net.sensors["source"] = net.ids == 0
        links = net.graph.n_links
        probe = time_vm(gradient_program, net, 3, backend, args.device)
        rounds = max(5, int(args.budget / max(probe, 1e-6)))
        bare = bare_numpy_gradient(net.graph, net.sensors["source"], rounds)
        for name, prog in (("gradient", gradient_program), ("S+C (SCR)", scr_program)):
            sec = time_vm(prog, net, rounds, backend, args.device)
            extra = f"{n / bare:>14,.0f}" if name == "gradient" else f"{'':>14}"
            print(f"{n:>8} {links / n:>9.2f} {name:>10} {sec * 1e3:>9.3f} {n / sec:>14,.0f} {sec / links * 1e9:>8.1f} {extra}")


if __name__ == "__main__":
    main()
