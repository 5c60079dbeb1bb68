"""FBFL accuracy: own-area accuracy of the regional models (3 areas, hard split, 30 rounds) beside a central FedAvg
on the same split, on the embedded digits and on Fashion-MNIST, over seeds.

    python benchmarks/fbfl.py                          # digits and Fashion-MNIST, seeds 0-4, 2 processes
    python benchmarks/fbfl.py --datasets digits --seeds 0-1

FBFL runs are simulator runs of scenarios/fbfl.yaml and scenarios/fbfl-fashion.yaml through `fieldlearn.sweep`
(one process per run, one torch thread each). The central FedAvg uses the very same data: the learning context the
scenario builds (same partition, same device parts, same model and optimiser); each round every device trains from
the global model on its own part, and the server averages all of them weighted by sample counts. Accuracy is on
each area's validation split (the 30% held out per area); FedAvg's single model is scored on the union of the
areas' validation splits ("global") and on each area's own split.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = {"digits": REPO / "scenarios" / "fbfl.yaml", "fashion-mnist": REPO / "scenarios" / "fbfl-fashion.yaml"}
PUBLISHED = {"digits": None, "fashion-mnist": (0.92, 0.56)}  # FBFL run data (Fashion-MNIST), FedAvg global


def fedavg(dataset: str, seed: int) -> dict:
    """A central FedAvg on the scenario's split: the global model's accuracy per area and overall."""
    import torch

    torch.set_num_threads(1)
    from fieldlearn.learning.samples import pad_sets
    from fieldlearn.learning.data import IndexSets
    from fieldlearn.learning.metrics import accuracy_matrix
    from fieldlearn.sim import load_scenario
    from fieldlearn.sim.engine import Engine

    started = time.perf_counter()
    engine = Engine(load_scenario(SCENARIOS[dataset], [f"seed={seed}"]))
    ctx = engine.vm.resources["learning"]
    ids = np.arange(engine.capacity)
    region = np.asarray(engine.region)
    global_model = ctx.initial_models(ids[:1])
    rounds = int(engine.scenario.duration.rounds)
    for r in range(rounds):
        sets = ctx.samples(ids, region, r)
        local = ctx.trainer(global_model.expand(len(ids)), pad_sets(sets), salt=(r, 0))
        global_model = local.mean(weights=torch.as_tensor(sets.lengths(), dtype=torch.float32))
    per_area = accuracy_matrix(global_model, ctx.dataset, ctx.eval_sets)[0]
    everything = IndexSets.from_lists([ctx.eval_sets.indices])
    overall = accuracy_matrix(global_model, ctx.dataset, everything)[0, 0]
    return {"dataset": dataset, "seed": seed, "per_area": per_area.tolist(), "own": float(per_area.mean()),
            "global": float(overall), "wall": time.perf_counter() - started}


def fbfl_runs(dataset: str, seeds: list[int], workers: int) -> list[dict]:
    from fieldlearn.sweep import sweep

    table = sweep(SCENARIOS[dataset], seeds=seeds, workers=workers, progress=False, run_figures=False,
                  rounds_at="end", metric="regional_accuracy")
    if table.failures:
        raise RuntimeError(f"FBFL runs failed: {table.failures}")
    out = []
    for seed in seeds:
        rows = [r for r in table.rows if r["seed"] == seed]
        last = rows[-1]
        areas = sorted(k for k in last if k.startswith("area_accuracy."))
        out.append({"seed": seed, "own": last["regional_accuracy"], "device_own": last["own_accuracy"],
                    "per_area": [last[k] for k in areas]})
    return out, table.wall_seconds


def mean_std(values: list[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "n/a"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ({sd:.3f})"


def parse_seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="digits,fashion-mnist")
    p.add_argument("--seeds", default="0-4")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    datasets = args.datasets.split(",")
    started = time.perf_counter()
    lines = ["| dataset | FBFL regional model, own area | per area | FBFL device models, own area | "
             "central FedAvg, own area | FedAvg, global | published FBFL / FedAvg | wall per FBFL run | "
             "wall per FedAvg run |", "|---|---|---|---|---|---|---|---|---|"]
    for dataset in datasets:
        t0 = time.perf_counter()
        runs, sweep_wall = fbfl_runs(dataset, seeds, args.workers)
        fbfl_wall = (time.perf_counter() - t0) * min(args.workers, len(seeds)) / len(seeds)
        with ProcessPoolExecutor(args.workers) as pool:
            central = list(pool.map(fedavg, [dataset] * len(seeds), seeds))
        per_area = np.array([r["per_area"] for r in runs])
        pub = PUBLISHED[dataset]
        lines.append(
            f"| {dataset} | {mean_std([r['own'] for r in runs])} | "
            f"{' / '.join(f'{v:.3f}' for v in per_area.mean(axis=0))} | {mean_std([r['device_own'] for r in runs])} | "
            f"{mean_std([c['own'] for c in central])} | {mean_std([c['global'] for c in central])} | "
            f"{'%.2f / %.2f' % pub if pub else '-'} | {fbfl_wall:.0f} s | "
            f"{statistics.fmean(c['wall'] for c in central):.0f} s |")
        print(lines[-1], flush=True)
    print()
    print(f"FBFL accuracy: 3 areas x 12 devices, hard split, 30 rounds, seeds {args.seeds}, "
          f"{args.workers} processes, {time.perf_counter() - started:.0f} s in all")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
