"""Scaling table: devices x {gradient, S+C, SCR} x {fieldlearn, bare, ratio, peak RSS}, each cell in its own process.

    python benchmarks/scaling.py [--sizes 100,1000,10000,100000,1000000] [--budget 2.0] [--repeats 3] [--keep-freed]

Random geometric graphs of mean degree about 8 (seed 1), synchronous rounds, numpy backend, one core.
- gradient: `fieldlearn.lib.distance_to` (share-based Bellman-Ford);
- S+C: `elect_leaders` + `collect` of 1.0 (what `benchmarks/calculus.py` has measured as "S+C (SCR)");
- SCR: the whole self-organising coordination regions pattern: `regions` (election and distance to the leader),
  `collect_sum` inside each region and `broadcast` of the sum from the leader.
"bare" is one Bellman-Ford round hand-written in numpy on the same graph (gather, add, `minimum.reduceat`,
`where`), timed in the same process, interleaved with the fieldlearn rounds; "ratio" is fieldlearn's device-rounds
per second over bare's (1.0: as fast as bare array code). Each time is the best of `--repeats` blocks.
`--keep-freed` makes glibc keep freed blocks for reuse (`keep_freed_memory()`), for both sides.
"RSS graph" is the process's peak resident memory after building the network, "RSS peak" after the runs.
"fixed" is the intercept of a line through the round times at the two smallest sizes (the cost of a round
that does not grow with the devices).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

PROGRAMS = ("gradient", "S+C", "SCR")


def program_of(name: str):
    """gradient and S+C are `benchmarks/calculus.py`'s programs; SCR is the whole pattern."""
    from calculus import gradient_program, scr_program

    from fieldlearn.lib import regions

    def scr():
        region = regions(0.2)
        return region.broadcast(region.collect_sum(1.0))

    return {"gradient": gradient_program, "S+C": scr_program, "SCR": scr}[name]


def cell(n: int, name: str, budget: float, repeats: int, keep_freed: bool) -> dict:
    """Seconds per round of `name` and of bare Bellman-Ford on one graph, interleaved; peak RSS."""
    from calculus import bare_round
    from memory_usage import peak_rss_mib

    from fieldlearn import Inbox, Network, RoundVM

    if keep_freed:  # process-wide: bare rounds get the same allocator policy
        from fieldlearn.calculus import keep_freed_memory

        keep_freed_memory()
    net = Network.random_geometric(n, mean_degree=8.0, seed=1)
    source = net.ids == 0
    g = net.graph
    rss_graph = peak_rss_mib()
    vm = RoundVM(program_of(name))
    vm.sensors = {"source": source}
    ids = np.arange(n)
    hint = {"n_devices": n} if "n_devices" in getattr(Inbox, "__dataclass_fields__", {}) else {}
    inbox = Inbox(g.indptr, g.neighbours, {"distance": g.distance}, **hint)
    t0 = time.perf_counter()
    for _ in range(3):
        vm.round(ids, inbox)
    probe = (time.perf_counter() - t0) / 3
    rounds = max(3, int(budget / repeats / max(probe, 1e-7)))
    d = np.full(n, np.inf)
    nonempty = g.degree() > 0
    starts = g.indptr[:-1][nonempty]
    t0 = time.perf_counter()
    for _ in range(3):
        d = bare_round(g, source, d, nonempty, starts)
    bare_rounds = max(3, int(budget / repeats / max((time.perf_counter() - t0) / 3, 1e-7)))
    best_vm = best_bare = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(rounds):
            vm.round(ids, inbox)
        best_vm = min(best_vm, (time.perf_counter() - t0) / rounds)
        t0 = time.perf_counter()
        for _ in range(bare_rounds):
            d = bare_round(g, source, d, nonempty, starts)
        best_bare = min(best_bare, (time.perf_counter() - t0) / bare_rounds)
    return {"n": n, "program": name, "links": int(g.n_links), "sec": best_vm, "bare": best_bare, "rounds": rounds,
            "rss_graph": rss_graph, "rss_peak": peak_rss_mib()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100,1000,10000,100000,1000000")
    p.add_argument("--programs", default=",".join(PROGRAMS))
    p.add_argument("--budget", type=float, default=2.0, help="seconds of fieldlearn rounds per cell")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--keep-freed", action="store_true",
                   help="call fieldlearn.calculus.keep_freed_memory() in every cell (bare rounds included)")
    p.add_argument("--cell", default=None, help=argparse.SUPPRESS)  # N:PROGRAM, run in a child process
    args = p.parse_args()
    if args.cell:
        n, name = args.cell.split(":", 1)
        print(json.dumps(cell(int(n), name, args.budget, args.repeats, args.keep_freed)))
        return
    print(f"machine: {platform.processor() or platform.machine()}, load {os.getloadavg()[0]:.2f}, numpy backend, 1 core"
          f"{', keep_freed_memory()' if args.keep_freed else ', default allocator'}")
    print(f"{'devices':>8} {'links/dev':>9} {'program':>9} {'ms/round':>9} {'dev-rounds/s':>13} {'bare ms':>8} "
          f"{'bare dev-r/s':>13} {'ratio':>6} {'RSS graph':>9} {'RSS peak':>9}")
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        for name in args.programs.split(","):
            out = subprocess.run([sys.executable, __file__, "--cell", f"{n}:{name}", "--budget", str(args.budget),
                                  "--repeats", str(args.repeats)] + (["--keep-freed"] if args.keep_freed else []),
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{n:>8} {'':>9} {name:>9} failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(r)
            print(f"{n:>8} {r['links'] / n:>9.2f} {name:>9} {r['sec'] * 1e3:>9.3f} {n / r['sec']:>13,.0f} "
                  f"{r['bare'] * 1e3:>8.3f} {n / r['bare']:>13,.0f} {r['bare'] / r['sec']:>6.2f} "
                  f"{r['rss_graph']:>7.0f}MB {r['rss_peak']:>7.0f}MB", flush=True)
    sizes = sorted({r["n"] for r in rows})
    if len(sizes) >= 2:
        a, b = sizes[:2]
        for name in args.programs.split(","):
            t = {r["n"]: r["sec"] for r in rows if r["program"] == name}
            if a in t and b in t:
                fixed = t[a] - a * (t[b] - t[a]) / (b - a)
                print(f"fixed cost per round, {name}: {fixed * 1e6:.0f} us (round at {a} devices: {t[a] * 1e6:.0f} us)")


if __name__ == "__main__":
    main()
