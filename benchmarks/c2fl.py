"""C2FL accuracy benchmark on Fashion-MNIST: C2FL (paper rule), C2FL with the post-merge fine-tune (fieldlearn's
default), CL, FL and Local, in two data regimes, over seeds; bounded class-balanced replay against unbounded.

    python benchmarks/c2fl.py                       # seeds 0-4, 2 processes, about 20 minutes on 2 cores
    python benchmarks/c2fl.py --seeds 0-1 --quick   # a smoke run (fewer methods, 60 rounds)

Every run is `scenarios/c2fl-fashion.yaml` (the paper's geometry: 4 areas x 12 devices, 16 movers touring the
areas every 30 rounds, 120 rounds, hard split of the ten classes into 4 groups) with, for the CPU budget, images
average-pooled to 14x14 and an MLP 196-64-10 (`learning.downsample=2`, `learning.model.hidden=[64]`), evaluated
every 5 rounds on a fixed subsample of 250 samples of each area's validation split. Regimes: 200 and 20 samples
per round (`learning.samples_per_round`). Runs go to a process pool (one torch thread each; `fieldlearn.sweep`
would run them too, but its table does not carry per-run wall times, which this benchmark reports).

The class-balanced rows use `memory: class_balanced` with a capacity of 10% of the mean memory the movers of the
matching unbounded run (same regime and seed) hold at the end.

Variants were chosen on validation data of a separate seed (100), never on Fashion-MNIST's test split (unused).
Outputs (default benchmarks/results/c2fl/): evals.csv (every evaluation of every run: CAcc, static accuracy and
every mover's per-area accuracy), table.md, cacc_<regime>.png (CAcc over rounds, mean and spread over seeds, one
line per method), mover_<regime>.png (per-area accuracy of one mover over rounds, moves marked).
"""
from __future__ import annotations

import argparse
import csv
import math
import multiprocessing as mp
import statistics
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "c2fl-fashion.yaml"
COMMON = ["learning.downsample=2", "learning.model.hidden=[64]", "learning.eval_samples=250", "learning.eval_every=5",
          "exports.values=[]", "exports.metrics=[cacc]", "exports.figures.timeseries=false"]
PAPER = {"method": "c2fl", "variant": "paper", "weighting": "uniform", "finetune": False}
METHODS = {
    "C2FL (paper rule)": PAPER,
    "C2FL + fine-tune (default)": {"method": "c2fl"},
    "CL": {"method": "cl"},
    "FL": {"method": "fl"},
    "Local": {"method": "local"},
}
DEFAULT = "C2FL + fine-tune (default)"
BOUNDED = "C2FL default, class-balanced 10%"
REGIMES = {"plentiful (200/round)": 200, "data-starved (20/round)": 20}
ROUNDS_AT = (30, 60, 90, 120)
#: The authors' published run data on EMNIST letters (7 seeds), mean (std) where given.
PAPER_EMNIST = {"C2FL": ("0.75", "1.28", "1.73", "2.14 (0.05)"), "CL": ("0.68", "1.17", "1.57", "1.96 (0.05)"),
                "FL": ("0.75", "0.74", "0.75", "0.75 (0.01)"), "Local": ("0.68", "0.69", "0.70", "0.70 (0.02)")}


def run_one(label: str, regime: str, seed: int, params: dict, rounds: int) -> dict:
    """One simulator run in this (worker) process; returns its evaluation history and wall time."""
    import torch

    torch.set_num_threads(1)
    from fieldlearn.sim import load_scenario, run_scenario
    from fieldlearn.sweep.grid import _yaml_text

    sets = COMMON + [f"seed={seed}", f"duration.rounds={rounds}", f"learning.samples_per_round={REGIMES[regime]}",
                     f"program.params={_yaml_text(params, 'params')}"]
    started = time.perf_counter()
    result = run_scenario(load_scenario(SCENARIO, sets))
    wall = time.perf_counter() - started
    ctx = result.engine.learning
    movers = np.flatnonzero(ctx.mobile)
    history = [{"round": ev.round, "cacc": ev.cacc(), "static": ev.own(np.flatnonzero(~ev.mobile)),
                "movers": ev.accuracy[movers].tolist()} for ev in ctx.history]
    memory = ctx.memory_sizes()[ctx.mobile]
    return {"label": label, "regime": regime, "seed": seed, "wall": wall, "history": history, "movers": movers.tolist(),
            "memory": float(memory.mean()), "regions": ctx.region_names}


def at_round(run: dict, r: int) -> float:
    for h in run["history"]:
        if h["round"] == r:
            return h["cacc"]
    return math.nan


def fmt(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.2f} ({sd:.2f})"


def table(runs: list[dict], labels: list[str], rounds_at: tuple[int, ...]) -> list[str]:
    out = []
    for regime in REGIMES:
        out += [f"**{regime}**", "", "| method | " + " | ".join(f"CAcc r{r}" for r in rounds_at)
                + " | static own-area acc | wall per run | paper (EMNIST) r30 / r60 / r90 / r120 |",
                "|---|" + "---|" * len(rounds_at) + "---|---|---|"]
        for label in labels:
            mine = [r for r in runs if r["label"] == label and r["regime"] == regime]
            if not mine:
                continue
            cells = [fmt([at_round(r, k) for r in mine]) for k in rounds_at]
            static = fmt([r["history"][-1]["static"] for r in mine])
            wall = statistics.fmean(r["wall"] for r in mine)
            key = "C2FL" if label == "C2FL (paper rule)" else label
            paper = " / ".join(PAPER_EMNIST[key]) if key in PAPER_EMNIST else ""
            out.append(f"| {label} | " + " | ".join(cells) + f" | {static} | {wall:.0f} s | {paper} |")
        out.append("")
    return out


def write_csv(runs: list[dict], path: Path) -> None:
    regions = runs[0]["regions"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        movers = runs[0]["movers"]
        w.writerow(["method", "regime", "seed", "round", "cacc", "static_accuracy"]
                   + [f"d{d}.{r}" for d in movers for r in regions])
        for run in runs:
            for h in run["history"]:
                w.writerow([run["label"], run["regime"], run["seed"], h["round"], f"{h['cacc']:.4f}",
                            f"{h['static']:.4f}"] + [f"{v:.4f}" for row in h["movers"] for v in row])


def read_csv(path: Path) -> tuple[list[dict], list[str]]:
    """The runs of an evals.csv (as `run_one` returns them, without wall times) and the method labels in order."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    cols = header[6:]
    movers = sorted({int(c.split(".")[0][1:]) for c in cols})
    regions = list(dict.fromkeys(c.split(".", 1)[1] for c in cols))
    runs: dict[tuple, dict] = {}
    labels: list[str] = []
    for row in body:
        label, regime, seed = row[0], row[1], int(row[2])
        if label not in labels:
            labels.append(label)
        run = runs.setdefault((label, regime, seed), {"label": label, "regime": regime, "seed": seed, "history": [],
                                                      "movers": movers, "regions": regions, "wall": math.nan})
        acc = np.array([float(v) for v in row[6:]]).reshape(len(movers), len(regions))
        run["history"].append({"round": int(row[3]), "cacc": float(row[4]), "static": float(row[5]),
                               "movers": acc.tolist()})
    return list(runs.values()), labels


def figures(runs: list[dict], labels: list[str], out: Path, rounds: int) -> list[str]:
    from matplotlib.figure import Figure

    written = []
    for regime in REGIMES:
        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        for k, label in enumerate(labels):
            mine = [r for r in runs if r["label"] == label and r["regime"] == regime]
            if not mine:
                continue
            x = [h["round"] for h in mine[0]["history"]]
            y = np.array([[h["cacc"] for h in r["history"]] for r in mine])
            ax.plot(x, y.mean(0), color=f"C{k}", label=label)
            if len(mine) > 1:
                ax.fill_between(x, y.min(0), y.max(0), color=f"C{k}", alpha=0.15, linewidth=0)
        for m in range(30, rounds, 30):
            ax.axvline(m, color="0.6", linestyle=":", linewidth=1)
        ax.set(xlabel="round", ylabel="CAcc (sum over the 4 areas)", title=f"Fashion-MNIST, {regime}")
        ax.legend(fontsize=7, loc="upper left")
        name = f"cacc_{REGIMES[regime]}.png"
        fig.savefig(out / name, dpi=100)
        written.append(name)
        # one mover (the first of area 0) under the default C2FL and CL, seed of the first run
        fig = Figure(figsize=(9, 3.4))
        axes = fig.subplots(1, 2, sharey=True)
        for ax, label in zip(axes, [DEFAULT, "CL"]):
            mine = [r for r in runs if r["label"] == label and r["regime"] == regime]
            if not mine:
                continue
            run = mine[0]
            x = [h["round"] for h in run["history"]]
            acc = np.array([h["movers"][0] for h in run["history"]])
            for a, region in enumerate(run["regions"]):
                ax.plot(x, acc[:, a], label=region)
            for m in range(30, rounds, 30):
                ax.axvline(m, color="0.6", linestyle=":", linewidth=1)
            ax.set(xlabel="round", title=f"{label}: device {run['movers'][0]} (seed {run['seed']})")
        axes[0].set_ylabel("accuracy on each area")
        axes[0].legend(fontsize=7)
        fig.suptitle(f"per-area accuracy of a mover (areas 0 -> 1 -> 2 -> 3, moves dotted), {regime}", fontsize=9)
        fig.subplots_adjust(top=0.8, bottom=0.15, wspace=0.08)
        name = f"mover_{REGIMES[regime]}.png"
        fig.savefig(out / name, dpi=100)
        written.append(name)
    return written


def parse_seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0-4")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="60 rounds, C2FL default, CL and Local only (a smoke run)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "c2fl"))
    p.add_argument("--replot", action="store_true", help="redraw the figures from OUT/evals.csv without running")
    args = p.parse_args(argv)
    if args.replot:
        runs, labels = read_csv(Path(args.out) / "evals.csv")
        print("files:", ", ".join(figures(runs, labels, Path(args.out), max(r["history"][-1]["round"] for r in runs))))
        return 0
    seeds = parse_seeds(args.seeds)
    rounds = 60 if args.quick else 120
    rounds_at = tuple(r for r in ROUNDS_AT if r <= rounds)
    methods = {k: v for k, v in METHODS.items() if not args.quick or k in (DEFAULT, "CL", "Local")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # the costliest runs first, so that the pool's tail is short
    jobs = [(label, regime, seed, params, rounds) for regime in REGIMES for label, params in methods.items()
            for seed in seeds]
    jobs.sort(key=lambda j: (REGIMES[j[1]] != 200, j[0] not in (DEFAULT, BOUNDED), j[0] != "C2FL (paper rule)"))
    runs: list[dict] = []
    with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("forkserver")) as pool:
        pending = {pool.submit(run_one, *job) for job in jobs}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                run = fut.result()
                runs.append(run)
                print(f"{time.perf_counter() - started:7.0f} s  {run['label']:<34} {run['regime']:<24} seed {run['seed']}"
                      f"  CAcc {run['history'][-1]['cacc']:.3f}  ({run['wall']:.0f} s)", flush=True)
                if run["label"] == DEFAULT and not args.quick:
                    capacity = max(1, int(round(0.1 * run["memory"])))
                    params = dict(METHODS[DEFAULT], memory="class_balanced", capacity=capacity)
                    pending.add(pool.submit(run_one, BOUNDED, run["regime"], run["seed"], params, rounds))
    total = time.perf_counter() - started
    labels = list(methods) + ([] if args.quick else [BOUNDED])
    runs.sort(key=lambda r: (labels.index(r["label"]), list(REGIMES).index(r["regime"]), r["seed"]))
    lines = [f"C2FL on Fashion-MNIST (14x14, MLP 196-64-10), hard split into 4 areas, {rounds} rounds, seeds "
             f"{args.seeds}; CAcc = mean over the 16 movers of the summed accuracy on the 4 areas' validation "
             f"subsamples, mean (std) over seeds. {len(runs)} runs on {args.workers} processes in {total / 60:.1f} min.",
             ""] + table(runs, labels, rounds_at)
    bounded = [r for r in runs if r["label"] == BOUNDED]
    if bounded:
        lines.append("Class-balanced replay at 10% of the unbounded memory (final CAcc kept, per regime):")
        for regime in REGIMES:
            full = {r["seed"]: at_round(r, rounds) for r in runs if r["label"] == DEFAULT and r["regime"] == regime}
            part = {r["seed"]: at_round(r, rounds) for r in bounded if r["regime"] == regime}
            mem = [r["memory"] for r in runs if r["label"] == DEFAULT and r["regime"] == regime]
            ratio = [part[s] / full[s] for s in part if s in full and full[s] > 0]
            lines.append(f"- {regime}: unbounded memory {statistics.fmean(mem):.0f} samples per mover, bounded "
                         f"{statistics.fmean(mem) * 0.1:.0f}; kept {fmt(ratio)} of the unbounded CAcc")
    text = "\n".join(lines)
    print()
    print(text)
    (out / "table.md").write_text(text + "\n")
    write_csv(runs, out / "evals.csv")
    print("files:", ", ".join(["table.md", "evals.csv"] + figures(runs, labels, out, rounds)), "in", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
