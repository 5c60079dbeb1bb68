"""Calculus throughput: device-rounds per second of distance_to and of the SCR pattern on random geometric graphs.

Prints a table; also times the same gradient as bare numpy array code (the ceiling for any VM) in the same run.
    python benchmarks/calculus.py [--sizes 100,1000,10000,100000] [--backend numpy|torch] [--device cpu|cuda]

`--models` prints instead what moving model-sized values through regions costs: 1,024 devices, each holding the
parameters of a 784-128-10 MLP (101,770 float32 in four tensors, a pytree), on the torch backend, one thread:
`regions` -> `collect_mean` -> `broadcast` per round, on 4 cliques of 256 devices (261,120 links) and on a
sparse random geometric graph (about 6 links per device). "arithmetic" is the least such a round must compute:
every device's row added into its parent's (`index_add_`) and every parent's row copied back (`index_select`). Each row runs in its own process under an address-space limit (`--mem-limit` GB), so a round that would
make one model copy per link fails there instead of swapping.
    python benchmarks/calculus.py --models [--mem-limit 8] [--model-rounds 3] [--keep-freed]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

from fieldlearn import Inbox, Network, RoundVM, sense
from fieldlearn.calculus.runner import inbox_of
from fieldlearn.lib import collect, distance_to, elect_leaders
from memory_usage import peak_rss_mib


def gradient_program():
    return distance_to(sense("source"))


def scr_program():
    leader, potential = elect_leaders(radius=0.2)
    return collect(potential, 1.0, op="sum")


def bare_round(graph, source, d: np.ndarray, nonempty: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """One share-based Bellman-Ford round as hand-written array code (gather, add, `minimum.reduceat`, `where`);
    `nonempty` (devices with links) and `starts` (their first links) come from the graph once."""
    cand = d[graph.neighbours] + graph.distance
    best = np.full(graph.n_devices, np.inf)
    best[nonempty] = np.minimum.reduceat(cand, starts)
    return np.where(source, 0.0, best)


def bare_numpy_gradient(graph, source, rounds: int) -> float:
    """The same share-based gradient as hand-written array code: seconds per round."""
    d = np.full(graph.n_devices, np.inf)
    nonempty = graph.degree() > 0
    starts = graph.indptr[:-1][nonempty]
    t0 = time.perf_counter()
    for _ in range(rounds):
        d = bare_round(graph, source, d, nonempty, starts)
    return (time.perf_counter() - t0) / rounds


def device_inbox(vm: RoundVM, graph, ids: np.ndarray) -> Inbox:
    """The inbox of `ids` on the VM's backend, telling the VM the number of devices (where it can take it)."""
    inbox = inbox_of(graph, ids)
    be = vm.backend
    fields = dict(indptr=be.index(inbox.indptr), neighbours=be.index(inbox.neighbours),
                  edge_data={k: be.asarray(v) for k, v in inbox.edge_data.items()})
    if "n_devices" in getattr(Inbox, "__dataclass_fields__", {}):
        fields["n_devices"] = graph.n_devices
    return Inbox(**fields)


def time_vm(program, net: Network, rounds: int, backend: str, device: str | None) -> float:
    """Seconds per synchronous round of `program` on `net` (after warm-up rounds)."""
    vm = RoundVM(program, backend=backend, device=device)
    vm.sensors = {k: vm.backend.asarray(v) for k, v in net.sensors.items()}
    ids = np.arange(net.n_devices)
    inbox = device_inbox(vm, net.graph, ids)
    if vm.backend.name == "torch":
        ids = vm.backend.index(ids)
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


MLP_SHAPES = {"0.weight": (128, 784), "0.bias": (128,), "2.weight": (10, 128), "2.bias": (10,)}


def model_network(kind: str, n: int = 1024) -> tuple[Network, float]:
    """4 cliques of n/4 devices (unit links) or a sparse random geometric graph (about 6 links per device),
    with the radius of the regions that gives one region per clique / a few dozen regions."""
    if kind == "clique":
        size = n // 4
        a, b = np.triu_indices(size, 1)
        edges = np.concatenate([np.column_stack([a, b]) + k * size for k in range(4)])
        return Network.from_edges(n, edges), 3.0
    return Network.random_geometric(n, mean_degree=6.0, seed=2), 0.3


def model_cell(kind: str, rounds: int, keep_freed: bool) -> dict:
    """Seconds per round of regions -> collect_mean -> broadcast of MLP-sized rows, and of the plain arithmetic."""
    import torch

    from fieldlearn.lib import regions

    torch.set_num_threads(1)
    if keep_freed:
        from fieldlearn.calculus import keep_freed_memory

        keep_freed_memory()
    net, radius = model_network(kind)
    n = net.n_devices
    gen = torch.Generator().manual_seed(0)
    for name, shape in MLP_SHAPES.items():
        net.sensors[name] = torch.randn((n,) + shape, generator=gen)

    def program():
        region = regions(radius)
        model = {name: sense(name) for name in MLP_SHAPES}
        return region.broadcast(region.collect_mean(model))

    vm = RoundVM(program, backend="torch")
    vm.sensors = net.sensors
    ids = np.arange(n)
    inbox = device_inbox(vm, net.graph, ids)
    t0 = time.perf_counter()
    vm.round(ids, inbox)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(rounds):
        vm.round(ids, inbox)
    sec = (time.perf_counter() - t0) / rounds
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_fieldlearn, sys_seconds = peak_rss_mib(), usage.ru_stime
    del vm
    g = net.graph
    flat = torch.cat([net.sensors[k].reshape(n, -1) for k in MLP_SHAPES], dim=1)
    has = g.degree() > 0  # a spanning forest of the regions' trees: each device's parent is its first neighbour
    parent = torch.as_tensor(np.where(has, g.neighbours[np.minimum(g.indptr[:-1], max(g.n_links - 1, 0))], np.arange(n)))
    t0 = time.perf_counter()
    for _ in range(rounds):
        total = torch.zeros_like(flat).index_add_(0, parent, flat)  # every device's row into its parent's
        copied = total.index_select(0, parent)  # and every parent's row back down
    arith = (time.perf_counter() - t0) / rounds
    del total, copied
    return {"kind": kind, "n": n, "links": int(g.n_links), "params": int(flat.shape[1]), "first": first, "sec": sec,
            "arith": arith, "rss_peak": rss_fieldlearn, "model_mb": flat.numel() * 4 / 2**20,
            "sys": sys_seconds}


def models_table(mem_limit_gb: float, rounds: int, keep_freed: bool) -> None:
    print(f"machine: {platform.processor() or platform.machine()}, load {os.getloadavg()[0]:.2f}, torch cpu, 1 thread, "
          f"address space limit {mem_limit_gb:g} GB{', keep_freed_memory()' if keep_freed else ''}")
    print(f"{'graph':>7} {'devices':>7} {'links':>7} {'params':>7} {'1st round s':>11} {'s/round':>8} "
          f"{'arithmetic s':>12} {'ratio':>6} {'RSS peak':>9} {'models':>8} {'sys s':>6}")
    for kind in ("clique", "sparse"):
        limit = int(mem_limit_gb * 2**30)
        out = subprocess.run([sys.executable, __file__, "--model-cell", kind, "--model-rounds", str(rounds)]
                             + (["--keep-freed"] if keep_freed else []),
                             capture_output=True, text=True,
                             preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
        if out.returncode != 0:
            last = (out.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{kind:>7} failed under the limit: {last[:150]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{kind:>7} {r['n']:>7} {r['links']:>7} {r['params']:>7} {r['first']:>11.3f} {r['sec']:>8.3f} "
              f"{r['arith']:>12.4f} {r['sec'] / r['arith']:>6.1f} {r['rss_peak']:>7.0f}MB {r['model_mb']:>6.0f}MB {r['sys']:>6.1f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100,1000,10000,100000")
    p.add_argument("--backend", default="numpy", choices=["numpy", "torch"])
    p.add_argument("--device", default=None, help="cpu or cuda (torch backend)")
    p.add_argument("--budget", type=float, default=2.0, help="seconds of rounds per measurement")
    p.add_argument("--models", action="store_true", help="the model-sized rows table instead")
    p.add_argument("--mem-limit", type=float, default=8.0, help="GB of address space per --models row")
    p.add_argument("--model-rounds", type=int, default=3)
    p.add_argument("--keep-freed", action="store_true", help="call keep_freed_memory() first (glibc keeps freed blocks)")
    p.add_argument("--model-cell", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.model_cell:
        print(json.dumps(model_cell(args.model_cell, args.model_rounds, args.keep_freed)))
        return
    if args.models:
        models_table(args.mem_limit, args.model_rounds, args.keep_freed)
        return
    if args.keep_freed:
        from fieldlearn.calculus import keep_freed_memory

        keep_freed_memory()
    backend = "torch" if args.device == "cuda" else args.backend
    print(f"machine: {platform.processor() or platform.machine()}, backend {backend} {args.device or 'cpu'}, "
          f"load {os.getloadavg()[0]:.2f}{', keep_freed_memory()' if args.keep_freed else ''}")
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
