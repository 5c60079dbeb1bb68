"""C2FL accuracy benchmark on Fashion-MNIST: C2FL (paper rule), fieldlearn's default C2FL (post-merge fine-tune,
class-wise head), CL, CL with the same local compute, FL and Local, in two data regimes, over seeds; bounded
class-balanced replay against unbounded.

    python benchmarks/c2fl.py                       # seeds 0-4, 2 processes, about 11 minutes on 2 cores
    python benchmarks/c2fl.py --seeds 0-1 --quick   # a smoke run (fewer methods, 60 rounds)
    python benchmarks/c2fl.py --partition 'dirichlet(0.5)'   # the same on areas that share classes unevenly

Every run is `scenarios/c2fl-fashion.yaml` (the paper's geometry: 4 areas x 12 devices, 16 movers touring the
areas every 30 rounds, 120 rounds, hard split of the ten classes into 4 groups) with, for the CPU budget, images
average-pooled to 14x14 and an MLP 196-64-10 (`learning.downsample=2`, `learning.model.hidden=[64]`), evaluated
every 5 rounds on a fixed subsample of 250 samples of each area's validation split. Regimes: 200 and 20 samples
per round (`learning.samples_per_round`).

The runs go through `fieldlearn.sweep` (one process and one torch thread per run), in two phases:
  1. every method x regime x seed, into OUT/sweep-main (a grid over `learning.samples_per_round` and
     `program.params`, the 200 regime and the costlier methods first, so that the pool's tail is short);
  2. the class-balanced rows, `memory: class_balanced` with a capacity of 10% of the mean memory the movers of the
     matching unbounded default run hold at the end (per regime, averaged over the seeds of phase 1), into
     OUT/sweep-bounded-<samples per round>.
The sweep folders are resumable: running the benchmark again with the same arguments reuses every complete run (an
interrupted benchmark resumes where it stopped; a changed scenario, program or option reruns only the runs it
changes; other seeds change the phase-2 capacities and so rerun phase 2). Each folder also holds the sweep's own
tables (results.csv, summary.csv, runs.csv) and comparison.png.

Variants were chosen on validation data of a separate seed (100), never on Fashion-MNIST's test split (unused).
Outputs (default benchmarks/results/c2fl/): evals.csv (every evaluation of every run: CAcc, static accuracy and
every mover's per-area accuracy), table.md, cacc_<regime>.png (CAcc over rounds, mean and spread over seeds, one
line per method), mover_<regime>.png (per-area accuracy of one mover over rounds, moves marked).
"""
from __future__ import annotations

import argparse
import csv
import math
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "c2fl-fashion.yaml"
# An export at time t comes after the round at time t (t + 1 rounds done), so the evaluations (after rounds 5, 10,
# ...) are met by exporting every round (`exports.interval=1`); `eval_round` tells the evaluations apart.
COMMON = ["learning.downsample=2", "learning.model.hidden=[64]", "learning.eval_samples=250", "learning.eval_every=5",
          "exports.values=[]", "exports.metrics=[cacc, static_accuracy, memory, eval_round, accuracy]",
          "exports.interval=1", "exports.figures.timeseries=false"]
PAPER = {"method": "c2fl", "variant": "paper", "weighting": "uniform", "finetune": False, "classwise_head": False}
METHODS = {
    "C2FL (paper rule)": PAPER,
    "C2FL + fine-tune, class-wise head, gamma 0.1 (default)": {"method": "c2fl", "gamma": 0.1},
    "CL": {"method": "cl"},
    "CL + the same extra pass (compute control)": {"method": "cl", "finetune": "always"},
    "FL": {"method": "fl"},
    "Local": {"method": "local"},
}
DEFAULT = "C2FL + fine-tune, class-wise head, gamma 0.1 (default)"
BOUNDED = "C2FL default, class-balanced 10%"
BOUNDED_FRACTION = 0.1  # of the unbounded default's final mean mover memory
REGIMES = {"plentiful (200/round)": 200, "data-starved (20/round)": 20}
ROUNDS_AT = (30, 60, 90, 120)
#: The authors' published run data on EMNIST letters (7 seeds), mean (std) where given.
PAPER_EMNIST = {"C2FL": ("0.75", "1.28", "1.73", "2.14 (0.05)"), "CL": ("0.68", "1.17", "1.57", "1.96 (0.05)"),
                "FL": ("0.75", "0.74", "0.75", "0.75 (0.01)"), "Local": ("0.68", "0.69", "0.70", "0.70 (0.02)")}
SAMPLES = "learning.samples_per_round"
PARAMS = "program.params"


def bounded_params(capacity: int) -> dict:
    return dict(METHODS[DEFAULT], memory="class_balanced", capacity=capacity)


def cost_order(labels: list[str]) -> list[str]:
    """The default C2FL first, then the other C2FL variants, then the rest (in METHODS order): costliest first."""
    return sorted(labels, key=lambda lab: (lab != DEFAULT, METHODS[lab].get("method") != "c2fl"))


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def run_sweep(phase: str, out: Path, seeds: list[int], samples: list[int], params: dict[str, dict], rounds: int,
              rounds_at: tuple[int, ...], workers: int,
              partition: str = "hard") -> tuple[list[dict], list[dict], float]:
    """One `fieldlearn.sweep` (resumable in `out`) of `samples` x `params` (label -> program.params) x `seeds`;
    returns its runs as `runs_of` makes them, its failures and its elapsed seconds."""
    from fieldlearn.sweep import sweep

    started = time.perf_counter()
    table = sweep(SCENARIO, seeds=seeds, grid={SAMPLES: samples, PARAMS: list(params.values())},
                  sets=COMMON + [f"duration.rounds={rounds}"] + split_sets(partition), workers=workers, out=out,
                  rounds_at=list(rounds_at),
                  metric="cacc", run_figures=False, progress=True, log=lambda s: print(f"[{phase}] {s}", flush=True))
    elapsed = time.perf_counter() - started
    runs = runs_of(table, params)
    print(f"[{phase}] {len(runs)} runs complete ({table.ran} run now, {table.reused} reused) in {elapsed:.0f} s; "
          f"results in {table.out}")
    for run in runs:
        last = run["history"][-1]["cacc"] if run["history"] else math.nan
        print(f"  {run['label']:<34} {run['regime']:<24} seed {run['seed']}  CAcc {last:.3f}  ({run['wall']:.0f} s)")
    for f in table.failures:
        print(f"  FAILED {f['run']}: {str(f['error']).strip().splitlines()[-1]}", file=sys.stderr)
    return runs, table.failures, elapsed


def runs_of(table: Any, params: dict[str, dict]) -> list[dict]:
    """A sweep's complete runs as {label, regime, seed, wall, memory (movers' mean at the end), movers, regions,
    history: [{round, cacc, static, movers: [mover][region] accuracy}] (one entry per evaluation)}."""
    label_of = [(p, label) for label, p in params.items()]  # program.params values are mappings: match by value
    regime_of = {v: k for k, v in REGIMES.items()}
    acc_cols = [c for c in table.columns if c.startswith("accuracy.d")]
    movers = list(dict.fromkeys(int(c.split(".", 2)[1][1:]) for c in acc_cols))
    regions = list(dict.fromkeys(c.split(".", 2)[2] for c in acc_cols))
    rows: dict[str, list[dict]] = {}
    for row in table.rows:
        rows.setdefault(row["run"], []).append(row)
    out = []
    for info in table.runs.rows:
        mine = rows.get(info["run"])
        if info["status"] != "complete" or not mine:
            continue
        history, seen = [], set()
        for row in mine:
            er = row.get("eval_round")
            if not finite(er) or er in seen:
                continue
            seen.add(er)
            history.append({"round": int(er), "cacc": row["cacc"], "static": row["static_accuracy"],
                            "movers": [[row[f"accuracy.d{d}.{r}"] for r in regions] for d in movers]})
        end = max(mine, key=lambda r: r["round"])
        out.append({"label": next(lab for p, lab in label_of if p == info[PARAMS]),
                    "regime": regime_of[info[SAMPLES]], "seed": info["seed"], "wall": info["wall_s"] or math.nan,
                    "memory": end["memory"], "history": history, "movers": movers, "regions": regions})
    return out


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


def figures(runs: list[dict], labels: list[str], out: Path, rounds: int, partition: str = "hard") -> list[str]:
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
        ax.set(xlabel="round", ylabel="CAcc (sum over the 4 areas)",
               title=f"Fashion-MNIST, {split_name(partition)}, {regime}")
        ax.legend(fontsize=7, loc="upper left")
        name = f"cacc_{REGIMES[regime]}.png"
        fig.savefig(out / name, dpi=100)
        written.append(name)
        # one mover (the first of area 0, seed of the first run) under every method, as in the paper's figure
        shown = [label for label in labels if label != BOUNDED and any(r["label"] == label for r in runs)]
        cols = min(3, len(shown)) or 1
        rows_n = math.ceil(len(shown) / cols) or 1
        fig = Figure(figsize=(4.2 * cols, 3.0 * rows_n + 0.6))
        axes = np.atleast_1d(fig.subplots(rows_n, cols, sharex=True, sharey=True, squeeze=False)).ravel()
        for ax, label in zip(axes, shown):
            run = next(r for r in runs if r["label"] == label and r["regime"] == regime)
            x = [h["round"] for h in run["history"]]
            acc = np.array([h["movers"][0] for h in run["history"]])
            for a, region in enumerate(run["regions"]):
                ax.plot(x, acc[:, a], label=region)
            for m in range(30, rounds, 30):
                ax.axvline(m, color="0.6", linestyle=":", linewidth=1)
            ax.set_title(label if len(label) < 40 else label.replace(", ", ",\n", 1), fontsize=8)
        for ax in axes[len(shown):]:
            ax.set_visible(False)
        for ax in axes[::cols]:
            ax.set_ylabel("accuracy on each area")
        for ax in axes[-cols:]:
            ax.set_xlabel("round")
        axes[0].legend(fontsize=7)
        run = next(r for r in runs if r["regime"] == regime)
        fig.suptitle(f"per-area accuracy of mover {run['movers'][0]} (seed {run['seed']}; areas 0 -> 1 -> 2 -> 3, "
                     f"moves dotted), {split_name(partition)}, {regime}", fontsize=9)
        fig.tight_layout(rect=(0, 0, 1, 0.95))
        name = f"mover_{REGIMES[regime]}.png"
        fig.savefig(out / name, dpi=100)
        written.append(name)
    return written


def split_sets(partition: str) -> list[str]:
    """The override for a split other than the scenario's own (hard), so that hard runs keep their stored results."""
    return [] if partition == "hard" else [f"learning.partition={partition}"]


def split_name(partition: str) -> str:
    return "hard split" if partition == "hard" else f"{partition} split"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0-4")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--quick", action="store_true",
                   help="60 rounds, C2FL default, CL and Local (and the bounded default) only (a smoke run)")
    p.add_argument("--partition", default="hard",
                   help="learning.partition of the four areas: hard (no shared class, the paper's), dirichlet(0.5) "
                        "(classes shared unevenly) or iid")
    p.add_argument("--out", help="result folder (default benchmarks/results/c2fl, or c2fl-<partition>)")
    p.add_argument("--replot", action="store_true", help="redraw the figures from OUT/evals.csv without running")
    args = p.parse_args(argv)
    if args.out is None:
        tag = "" if args.partition == "hard" else "-" + re.sub(r"[^\w.]+", "", args.partition)
        args.out = str(REPO / "benchmarks" / "results" / f"c2fl{tag}")
    if args.replot:
        runs, labels = read_csv(Path(args.out) / "evals.csv")
        last = max(r["history"][-1]["round"] for r in runs)
        print("files:", ", ".join(figures(runs, labels, Path(args.out), last, args.partition)))
        return 0
    from fieldlearn.sweep import SweepError, parse_seeds

    try:
        seeds = parse_seeds(args.seeds)
    except SweepError as exc:
        p.error(str(exc))
    rounds = 60 if args.quick else 120
    rounds_at = tuple(r for r in ROUNDS_AT if r <= rounds)
    methods = {k: v for k, v in METHODS.items() if not args.quick or k in (DEFAULT, "CL", "Local")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # phase 1: every method x regime x seed (expansion order = execution order: costliest first)
    regimes = sorted(REGIMES.values(), reverse=True)
    ordered = {label: methods[label] for label in cost_order(list(methods))}
    runs, failures, main_s = run_sweep("main", out / "sweep-main", seeds, regimes, ordered, rounds, rounds_at,
                                       args.workers, args.partition)
    # phase 2: the default with class-balanced replay at a fraction of the unbounded default's final memory
    capacities: dict[str, tuple[float, int]] = {}
    bounded_s = 0.0
    if DEFAULT in methods:
        for samples in regimes:
            regime = next(k for k, v in REGIMES.items() if v == samples)
            mem = [r["memory"] for r in runs if r["label"] == DEFAULT and r["regime"] == regime and finite(r["memory"])]
            if not mem:
                print(f"[bounded-{samples}] skipped: no complete unbounded default run in {regime}", file=sys.stderr)
                continue
            capacity = max(1, int(round(BOUNDED_FRACTION * statistics.fmean(mem))))
            capacities[regime] = (statistics.fmean(mem), capacity)
            got, failed, secs = run_sweep(f"bounded-{samples}", out / f"sweep-bounded-{samples}", seeds, [samples],
                                          {BOUNDED: bounded_params(capacity)}, rounds, rounds_at, args.workers,
                                          args.partition)
            runs += got
            failures += failed
            bounded_s += secs
    total = time.perf_counter() - started
    labels = list(methods) + ([BOUNDED] if capacities else [])
    runs.sort(key=lambda r: (labels.index(r["label"]), list(REGIMES).index(r["regime"]), r["seed"]))
    simulated = sum(r["wall"] for r in runs if finite(r["wall"]))
    # only what the stored runs hold, so that a rerun reusing them writes the same table
    lines = [f"C2FL on Fashion-MNIST (14x14, MLP 196-64-10), {split_name(args.partition)} into 4 areas, {rounds} "
             f"rounds, seeds "
             f"{args.seeds}; CAcc = mean over the 16 movers of the summed accuracy on the 4 areas' validation "
             f"subsamples, mean (std) over seeds. {len(runs)} runs, {simulated / 60:.1f} min of simulation in all "
             "(one process and one torch thread per run).", ""] + table(runs, labels, rounds_at)
    if capacities:
        lines.append(f"Class-balanced replay at {BOUNDED_FRACTION:.0%} of the unbounded memory (the movers' mean at "
                     "the end, averaged over seeds; final CAcc kept, per regime):")
        for regime, (mem, capacity) in capacities.items():
            full = {r["seed"]: at_round(r, rounds) for r in runs if r["label"] == DEFAULT and r["regime"] == regime}
            part = {r["seed"]: at_round(r, rounds) for r in runs if r["label"] == BOUNDED and r["regime"] == regime}
            ratio = [part[s] / full[s] for s in part if s in full and full[s] > 0]
            lines.append(f"- {regime}: unbounded memory {mem:.0f} samples per mover, bounded {capacity}; "
                         f"kept {fmt(ratio)} of the unbounded CAcc")
    text = "\n".join(lines)
    print()
    print(text)
    (out / "table.md").write_text(text + "\n")
    if runs:
        write_csv(runs, out / "evals.csv")
        files = ["table.md", "evals.csv"] + figures(runs, labels, out, rounds, args.partition)
        print("files:", ", ".join(files), "in", out)
    print(f"wall time: phase 1 (main) {main_s:.0f} s, phase 2 (bounded) {bounded_s:.0f} s, total {total:.0f} s "
          f"({total / 60:.1f} min) on {args.workers} processes")
    if failures:
        print(f"{len(failures)} runs failed (listed above and in the sweep folders' failures.csv)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
