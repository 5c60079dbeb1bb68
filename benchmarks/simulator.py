"""Simulator overhead over the bare calculus at 10,000 devices (static and all-mobile), and neighbour rebuild costs.

    python benchmarks/simulator.py [--devices 10000] [--rounds 60] [--degree 10]

Prints a table. "bare" is `RoundVM.round` on a fixed radius graph (the calculus alone); the simulator rows run the
same gradient program through `fieldlearn.sim.Engine` (event heap, batching, positions, graph, inbox, sensors).
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from fieldlearn.calculus.network import radius_graph
from fieldlearn.calculus.vm import Inbox, RoundVM
from fieldlearn.lib import distance_to
from fieldlearn import sense
from fieldlearn.sim.engine import Engine
from fieldlearn.sim.links import RadiusRule
from fieldlearn.sim.scenario import parse_scenario


def program() -> dict:
    return {"gradient": distance_to(sense("source"))}


def bare(n: int, rounds: int, side: float, radius: float) -> float:
    """Device-rounds per second of the calculus alone on a fixed graph."""
    pos = np.random.default_rng(0).random((n, 2)) * side
    g = radius_graph(pos, radius)
    vm = RoundVM(program)
    src = np.zeros(n, dtype=bool)
    src[0] = True
    vm.sensors["source"] = src
    ids = np.arange(n)
    inbox = Inbox(g.indptr, g.neighbours, {"distance": g.distance})
    vm.round(ids, inbox)
    t = time.perf_counter()
    for _ in range(rounds):
        vm.round(ids, inbox)
    return n * rounds / (time.perf_counter() - t)


def bare_run(n: int, rounds: int, side: float, radius: float) -> float:
    """Device-rounds per second of `fieldlearn.run` (the calculus' own driver, recording every round) on a fixed graph."""
    from fieldlearn.calculus import Network, run

    pos = np.random.default_rng(0).random((n, 2)) * side
    net = Network.from_positions(pos, radius)
    src = np.zeros(n, dtype=bool)
    src[0] = True
    net.sensors["source"] = src
    run(program, net, rounds=1)
    t = time.perf_counter()
    run(program, net, rounds=rounds)
    return n * rounds / (time.perf_counter() - t)


def scenario(n: int, rounds: int, side: float, radius: float, mobility: dict | None, retention: float | None) -> dict:
    dep = {"kind": "random", "count": n, "box": [0, 0, side, side]}
    regions = [{"name": "west", "box": [0, 0, side / 2, side]}, {"name": "east", "box": [side / 2, 0, side, side]}]
    if mobility:
        dep["mobility"] = mobility
    return {
        "name": "bench",
        "seed": 0,
        "duration": {"rounds": rounds + 1},
        "sensors": {"source": {"default": False, "set": [{"devices": {"ids": [0]}, "value": True}]}},
        "regions": regions,
        "deployments": [dep],
        "links": {"rule": "radius", "radius": radius, "retention": retention},
        "program": "gradient",
    }


def simulated(data: dict) -> tuple[float, Engine]:
    e = Engine(parse_scenario(data), program)
    e.run(until=1.0)  # first round (and its KD-tree search) outside the timing, as for bare
    t = time.perf_counter()
    e.run()
    dt = time.perf_counter() - t
    return (e.device_rounds - int(e.rounds.size)) / dt, e


def rebuilds(n: int, side: float, radius: float, speed: float, steps: int = 20) -> dict[str, float]:
    """Milliseconds per graph update for 10k moving devices: full KD-tree search vs the Verlet-skin re-filter."""
    rng = np.random.default_rng(1)
    pos = rng.random((n, 2)) * side
    alive = np.ones(n, dtype=bool)
    out = {}
    for name, skin in (("kd-tree search every step", 0.0), ("skin re-filter (skin = r/4)", 0.25 * radius)):
        rule = RadiusRule(radius, skin, adapt=False)
        p = pos.copy()
        rule.links(p, alive)
        t = time.perf_counter()
        for _ in range(steps):
            angle = rng.random(n) * 2 * math.pi
            p = p + speed * np.column_stack([np.cos(angle), np.sin(angle)])
            rule.links(p, alive)
        out[name] = (time.perf_counter() - t) / steps * 1e3
        out[name + " searches"] = rule.searches - 1
    return out


def best(fn, repeats: int) -> tuple[float, object]:
    """The best of `repeats` measurements (the machine may be shared), with the last run's extra result."""
    results = [fn() for _ in range(repeats)]
    return max(r[0] for r in results), results[-1][1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--degree", type=float, default=10.0, help="mean number of neighbours")
    ap.add_argument("--repeats", type=int, default=3, help="best of this many runs per row")
    args = ap.parse_args()
    n, rounds = args.devices, args.rounds
    side = math.sqrt(n)  # density 1 device per unit area
    radius = math.sqrt(args.degree / math.pi)

    base, _ = best(lambda: (bare(n, rounds, side, radius), None), args.repeats)
    rows = [("bare calculus (vm.round, fixed graph)", base, "")]
    driver, _ = best(lambda: (bare_run(n, rounds, side, radius), None), args.repeats)
    rows.append(("bare calculus (fieldlearn.run, fixed graph)", driver, "records every round"))
    configs: list[tuple] = [("simulator, static", None, None), ("simulator, static, retention 2", None, 2.0)]
    for pct in (1, 5):
        wp = {"kind": "random_waypoint", "box": [0, 0, side, side], "speed": pct / 100 * radius, "pause": 0}
        configs.append((f"simulator, all mobile: waypoint at {pct}% of radius/round", wp, 2.0))
    wp1 = {"kind": "random_waypoint", "box": [0, 0, side, side], "speed": 0.01 * radius, "pause": 0}
    configs.append(("simulator, all mobile: 1%/round, mobility_step 4 rounds", wp1, 2.0, 4.0))
    configs.append(("simulator, all mobile: tour, all jump every 5 rounds",
                    {"kind": "tour", "stops": ["west", "east"], "dwell": 5, "start": "spread"}, 2.0))
    for name, mob, ret, *step in configs:
        data = scenario(n, rounds, side, radius, mob, ret)
        if step:
            data["mobility_step"] = step[0]
        rate, e = best(lambda: simulated(data), args.repeats)
        note = f"{e.env.rule.searches} KD-tree searches, skin {e.env.rule.skin / radius:.2f} r" if mob else ""
        rows.append((name, rate, note))

    print(f"\n{n} devices, mean degree ~{args.degree:g}, {rounds} synchronous rounds, gradient (lib.distance_to), "
          f"best of {args.repeats}\n")
    print(f"| {'configuration':54} | {'device-rounds/s':>15} | {'vs bare':>7} | {'ms/round':>8} | note |")
    print(f"|{'-' * 56}|{'-' * 17}|{'-' * 9}|{'-' * 10}|------|")
    for name, rate, note in rows:
        print(f"| {name:54} | {rate:15,.0f} | {rate / base:7.2f} | {n / rate * 1e3:8.2f} | {note} |")
    for pct in (1, 5):
        speed = pct / 100 * radius
        rb = rebuilds(n, side, radius, speed)
        print(f"\nneighbour graph update, {n} devices moving {pct}% of the radius per step:")
        for key in ("kd-tree search every step", "skin re-filter (skin = r/4)"):
            print(f"  {key:30} {rb[key]:7.2f} ms/step  ({rb[key + ' searches']} KD-tree searches in 20 steps)")


if __name__ == "__main__":
    main()
