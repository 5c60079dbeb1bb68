"""C2FL at city scale (`scenarios/c2fl-city.yaml`: 16 adjacent areas x 64 devices, 256 movers with their own
itineraries, Dirichlet(0.5) split, Fashion-MNIST 14x14, 120 rounds): C2FL (the scenario's default, the weight blend on
every round at gamma 0.1, chosen on the validation seeds 100-102; and merge on arrival, the 48-device default), the
compute-matched control, CL, FL and Local over 5 seeds, each against the control paired per seed; and the cost of a
round from the paper's 48 devices to 1,024.

    python benchmarks/c2fl_city.py                   # 6 methods x 5 seeds, 2 processes (target: <= 30 min)
    python benchmarks/c2fl_city.py --seeds 100-102 --cost-rounds 0 --out benchmarks/results/c2fl-city-validation
    python benchmarks/c2fl_city.py --seeds 0 --rounds 20     # a smoke run

Outputs (default benchmarks/results/c2fl-city/): table.md, runs.csv, cacc.png (CAcc over rounds per method),
city.png (the city: areas, devices, the regions the election found at the end, movers marked).
"""
from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from c2fl import finite, interval, mean_sd, paired  # noqa: E402  (the paired statistics of the 48-device benchmark)

SCENARIO = REPO / "scenarios" / "c2fl-city.yaml"
SMALL = REPO / "scenarios" / "c2fl-fashion.yaml"
CONTROL = "CL + the same extra pass (compute control)"
METHODS = {
    "C2FL, the scenario's default (blend, gamma 0.1)": {"method": "c2fl"},
    "C2FL, merge on arrival (the 48-device default)": {"method": "c2fl", "gamma": 0.3, "merge": "arrival",
                                                        "arrival_window": 5},
    CONTROL: {"method": "cl", "finetune": "always"},
    "CL": {"method": "cl"},
    "FL": {"method": "fl"},
    "Local": {"method": "local"},
}
PARAMS = "program.params"
METRICS = ["cacc", "static_accuracy", "adaptation.after1", "adaptation.after3", "forgetting.bwt", "sent_bytes"]
COMPARED = [("cacc", "CAcc (sum over 16 areas)", "{:+.3f}"), ("adaptation.after1", "acc. 1 eval after arrival", "{:+.3f}"),
            ("forgetting.bwt", "backward transfer", "{:+.3f}"), ("static_accuracy", "static own-area", "{:+.3f}")]


def run(seeds: list[int], rounds: int, workers: int, out: Path) -> tuple[list[dict], list[dict], float]:
    from fieldlearn.sweep import sweep

    base = {k: dict(v, radius=8.0, gamma=v.get("gamma", 0.1), replay_per_round="auto") for k, v in METHODS.items()}
    started = time.perf_counter()
    table = sweep(SCENARIO, seeds=seeds, grid={PARAMS: list(base.values())},
                  sets=[f"duration.rounds={rounds}", "exports.figures.timeseries=false", "exports.interval=1"],
                  workers=workers, out=out / "sweep", rounds_at=[rounds], metric="cacc", run_figures=False,
                  progress=True, log=lambda s: print(f"[sweep] {s}", flush=True))
    elapsed = time.perf_counter() - started
    label_of = [(p, label) for label, p in base.items()]
    runs = []
    for info, mine in table.complete_runs():
        end = max(mine, key=lambda r: r["round"])
        evals = [(r["eval_round"], r["cacc"]) for r in mine if finite(r.get("eval_round"))]
        curve = sorted(dict(evals).items())
        runs.append({"label": next(lab for p, lab in label_of if p == info[PARAMS]), "seed": info["seed"],
                     "wall": info["wall_s"] or math.nan, "final": {k: v for k, v in end.items() if finite(v)},
                     "curve": curve})
    return runs, table.failures, elapsed


def round_cost(devices_scenario: Path, sets: list[str], rounds: int) -> tuple[int, float]:
    """(devices, seconds per round) of C2FL on a scenario, one process, one torch thread, after its first round."""
    import torch

    from fieldlearn.sim import load_scenario
    from fieldlearn.sim.engine import Engine

    torch.set_num_threads(1)
    engine = Engine(load_scenario(devices_scenario, sets + [f"duration.rounds={rounds + 1}", "learning.threads=1"]))
    engine.run(until=1.0)
    started = time.process_time()
    engine.run()
    return engine.capacity, (time.process_time() - started) / rounds


def tables(runs: list[dict], labels: list[str]) -> list[str]:
    out = ["| method | CAcc | static own-area | acc. 1 / 3 evals after arrival | backward transfer | "
           "kB sent/device/round | wall/run |", "|---|---|---|---|---|---|---|"]
    for label in labels:
        rs = [r for r in runs if r["label"] == label]
        if not rs:
            continue
        col = lambda c: [r["final"].get(c, math.nan) for r in rs]  # noqa: E731
        kb = [v / 1000 for v in col("sent_bytes") if finite(v)]
        out.append(f"| {label} | {mean_sd(col('cacc'))} | {mean_sd(col('static_accuracy'))} | "
                   f"{mean_sd(col('adaptation.after1'), 2)} / {mean_sd(col('adaptation.after3'), 2)} | "
                   f"{mean_sd(col('forgetting.bwt'))} | {mean_sd(kb, 1)} | "
                   f"{statistics.fmean(r['wall'] for r in rs):.0f} s |")
    out += ["", "Difference to the compute control, paired per seed, mean [95% CI] (** above zero, (-) below):", "",
            "| method | " + " | ".join(lab for _, lab, _ in COMPARED) + " |", "|---|" + "---|" * len(COMPARED)]
    for label in labels:
        if label == CONTROL or not any(r["label"] == label for r in runs):
            continue
        per = lambda lab, c: {r["seed"]: r["final"].get(c, math.nan) for r in runs if r["label"] == lab}  # noqa: E731
        out.append(f"| {label} | " + " | ".join(interval(paired(per(label, c), per(CONTROL, c)), f)
                                                 for c, _, f in COMPARED) + " |")
    return out


def figures(runs: list[dict], labels: list[str], out: Path, seed: int) -> list[str]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for k, label in enumerate(labels):
        rs = [r for r in runs if r["label"] == label and r["curve"]]
        if rs:
            x = [c[0] for c in rs[0]["curve"]]
            y = np.array([[c[1] for c in r["curve"]] for r in rs if len(r["curve"]) == len(x)])
            ax.plot(x, y.mean(0), color=f"C{k}", label=label)
    ax.set(xlabel="round", ylabel="CAcc (sum over the 16 areas)", title="C2FL at city scale (1,024 devices)")
    ax.legend(fontsize=7)
    fig.savefig(out / "cacc.png", dpi=100)
    # the city at the end of one default run: areas, devices coloured by their elected region, movers outlined
    from fieldlearn.sim import load_scenario, run_scenario

    result = run_scenario(load_scenario(SCENARIO, [f"seed={seed}", "duration.rounds=31",
                                                   "exports.metrics=[]", "exports.figures.timeseries=false"]))
    e = result.engine
    fig = Figure(figsize=(6.4, 6))
    ax = fig.subplots()
    for poly in e.regions.polygons:
        xs, ys = poly.exterior.xy
        ax.plot(xs, ys, color="0.5", linewidth=0.8)
    leader = e.outputs["leader"].astype(np.int64)
    _, colour = np.unique(leader, return_inverse=True)
    movers = e.deployed_mobile
    ax.scatter(e.positions[~movers, 0], e.positions[~movers, 1], c=colour[~movers] % 20, cmap="tab20", s=10)
    ax.scatter(e.positions[movers, 0], e.positions[movers, 1], c=colour[movers] % 20, cmap="tab20", s=22,
               edgecolors="k", linewidths=0.6)
    ax.set_aspect("equal")
    ax.set_title(f"16 areas, 1,024 devices, {len(np.unique(leader))} elected regions at round 31 "
                 "(colour: region; outlined: movers)", fontsize=8)
    fig.savefig(out / "city.png", dpi=100)
    return ["cacc.png", "city.png"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0-4")
    p.add_argument("--rounds", type=int, default=120)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "c2fl-city"))
    p.add_argument("--cost-rounds", type=int, default=5, help="rounds timed for the cost per round (0: skip)")
    args = p.parse_args(argv)
    from fieldlearn.sweep import parse_seeds

    seeds = parse_seeds(args.seeds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs, failures, elapsed = run(seeds, args.rounds, args.workers, out)
    labels = list(METHODS)
    lines = [f"C2FL at city scale: 16 adjacent areas x 64 devices (1,024; 256 movers with their own itineraries), "
             f"Dirichlet(0.5), Fashion-MNIST 14x14, MLP 196-64-10, {args.rounds} rounds, seeds {args.seeds}: "
             f"{len(runs)} runs in {elapsed / 60:.1f} min on {args.workers} processes (one torch thread each).", ""]
    lines += tables(runs, labels)
    if args.cost_rounds:
        same = ["learning.downsample=2", "learning.model.hidden=[64]", "learning.samples_per_round=20",
                "learning.epochs=1", "learning.batch_size=10", "program.params.replay_per_round=auto",
                "exports.metrics=[]"]
        small = round_cost(SMALL, same, args.cost_rounds)
        city = round_cost(SCENARIO, ["exports.metrics=[]"], args.cost_rounds)
        lines += ["", "Cost of a C2FL round (CPU seconds, one thread, the same model and data settings):", "",
                  "| devices | s/round | per device |", "|---:|---:|---:|"]
        for n, s in (small, city):
            lines.append(f"| {n:,} | {s:.3f} | {1000 * s / n:.2f} ms |")
    text = "\n".join(lines)
    print(text)
    (out / "table.md").write_text(text + "\n")
    with open(out / "runs.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "seed", "wall_s"] + METRICS)
        for r in runs:
            w.writerow([r["label"], r["seed"], f"{r['wall']:.1f}"] + [f"{r['final'].get(m, math.nan):.6g}" for m in METRICS])
    if runs:
        print("files:", ", ".join(["table.md", "runs.csv"] + figures(runs, labels, out, seeds[0])), "in", out)
    if failures:
        print(f"{len(failures)} runs failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
