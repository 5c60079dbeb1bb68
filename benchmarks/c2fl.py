"""C2FL accuracy benchmark on Fashion-MNIST: every variant against the compute-matched control, paired per seed.

    python benchmarks/c2fl.py                               # seeds 0-9, hard split, both regimes (~30 min, 2 cores)
    python benchmarks/c2fl.py --partition 'dirichlet(0.5)'  # areas that share classes unevenly
    python benchmarks/c2fl.py --validation                  # seeds 100-102: where variants are chosen
    python benchmarks/c2fl.py --seeds 0-1 --quick           # a smoke run (60 rounds, fewer methods)

Every run is `scenarios/c2fl-fashion.yaml` (the paper's geometry: 4 areas x 12 devices, 16 movers touring the areas
every 30 rounds, 120 rounds) with, for the CPU budget, images average-pooled to 14x14 and an MLP 196-64-10,
evaluated every 5 rounds on a fixed subsample of 250 samples of each area's validation split (Fashion-MNIST's test
split is never used). Regimes: 200 and 20 samples per round (`learning.samples_per_round`).

Methods: C2FL as fieldlearn runs it by default (chosen on the validation seeds: `merge: arrival`, movers blend with
the sample-weighted class-wise regional model at gamma 0.3 only in their first 5 rounds in an area, then the
post-merge pass), the previous default (the weight blend at gamma 0.1 on every round), the count-weighted merge
(each output row moves by the region's share of its class), the paper's rule, CL, CL given C2FL's extra training
pass on every round (the compute-matched control), FL and Local. The fair comparison is
against the control: every method's final CAcc, adaptation after arrival, forgetting and backward transfer are
reported as the mean difference to the control over the same seeds with a 95% confidence interval (t over the
paired differences).

The runs go through `fieldlearn.sweep` (one process and one torch thread per run, resumable in OUT/sweep): a rerun
with the same arguments reuses every complete run. Outputs (default benchmarks/results/c2fl[-<split>][-validation]):
table.md, runs.csv (every run's final metrics), cacc_<regime>.png (CAcc over rounds), adaptation_<regime>.png (a
mover's accuracy on the area it just entered, by evaluations after arrival), mover_<regime>.png (per-area accuracy
of one mover under every method).
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
          "exports.values=[]",
          "exports.metrics=[cacc, static_accuracy, memory, eval_round, accuracy, adaptation, forgetting, sent_bytes]",
          "exports.interval=1", "exports.figures.timeseries=false"]
DEFAULT = "C2FL default (merge on arrival)"
CONTROL = "CL + the same extra pass (compute control)"
METHODS = {
    DEFAULT: {"method": "c2fl", "gamma": 0.3, "merge": "arrival", "arrival_window": 5},
    "C2FL, blend (class-wise head, gamma 0.1)": {"method": "c2fl", "gamma": 0.1},
    "C2FL, count-weighted merge": {"method": "c2fl", "gamma": 0.1, "merge": "counts"},
    "C2FL (paper rule)": {"method": "c2fl", "variant": "paper", "weighting": "uniform", "finetune": False,
                          "classwise_head": False},
    CONTROL: {"method": "cl", "finetune": "always"},
    "CL": {"method": "cl"},
    "FL": {"method": "fl"},
    "Local": {"method": "local"},
}
QUICK = (DEFAULT, "C2FL, blend (class-wise head, gamma 0.1)", CONTROL, "Local")
#: hyper-parameters tried on the validation seeds only (the reported runs use the METHODS above)
VALIDATION_EXTRA = {
    "C2FL, merge on arrival, gamma 0.1": {"method": "c2fl", "gamma": 0.1, "merge": "arrival", "arrival_window": 5},
    "C2FL, merge on arrival, window 10": {"method": "c2fl", "gamma": 0.3, "merge": "arrival", "arrival_window": 10},
    "C2FL, count-weighted merge, gamma 0.3": {"method": "c2fl", "gamma": 0.3, "merge": "counts"},
    "C2FL, class-wise head, gamma 0.3": {"method": "c2fl", "gamma": 0.3},
}
REGIMES = {"plentiful (200/round)": 200, "data-starved (20/round)": 20}
SAMPLES = "learning.samples_per_round"
PARAMS = "program.params"
#: final metrics compared to the control: (column, label, format)
COMPARED = [("cacc", "CAcc", "{:+.3f}"), ("adaptation.after1", "acc. 1 eval after arrival", "{:+.3f}"),
            ("adaptation.after3", "after 3 evals", "{:+.3f}"), ("forgetting.mean", "forgetting", "{:+.3f}"),
            ("forgetting.bwt", "backward transfer", "{:+.3f}"), ("static_accuracy", "static own-area", "{:+.3f}")]


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def paired(a: dict[int, float], b: dict[int, float]) -> tuple[float, float, float, int]:
    """Mean of a - b over the seeds both have, with a 95% confidence interval (Student t over the differences)."""
    from scipy import stats

    diffs = [a[s] - b[s] for s in a if s in b and finite(a[s]) and finite(b[s])]
    n = len(diffs)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = statistics.fmean(diffs)
    if n == 1:
        return mean, math.nan, math.nan, 1
    half = stats.t.ppf(0.975, n - 1) * statistics.stdev(diffs) / math.sqrt(n)
    return mean, mean - half, mean + half, n


def run_sweep(out: Path, seeds: list[int], samples: list[int], params: dict[str, dict], rounds: int,
              workers: int, partition: str) -> tuple[list[dict], list[dict], float]:
    """One resumable `fieldlearn.sweep` of `samples` x `params` x `seeds`; its runs as `runs_of` makes them."""
    from fieldlearn.sweep import sweep

    started = time.perf_counter()
    table = sweep(SCENARIO, seeds=seeds, grid={SAMPLES: samples, PARAMS: list(params.values())},
                  sets=COMMON + [f"duration.rounds={rounds}"] + split_sets(partition), workers=workers, out=out,
                  rounds_at=[rounds], metric="cacc", run_figures=False, progress=True,
                  log=lambda s: print(f"[sweep] {s}", flush=True))
    elapsed = time.perf_counter() - started
    runs = runs_of(table, params)
    print(f"[sweep] {len(runs)} runs complete in {elapsed:.0f} s; results in {out}")
    for f in table.failures:
        print(f"  FAILED {f['run']}: {str(f['error']).strip().splitlines()[-1]}", file=sys.stderr)
    return runs, table.failures, elapsed


def runs_of(table: Any, params: dict[str, dict]) -> list[dict]:
    """A sweep's complete runs as {label, regime, seed, wall, final: {column: value}, movers, regions,
    history: [{round, cacc, static, movers: [mover][region] accuracy}] (one entry per evaluation)}."""
    label_of = [(p, label) for label, p in params.items()]  # program.params values are mappings: match by value
    regime_of = {v: k for k, v in REGIMES.items()}
    acc_cols = [c for c in table.columns if c.startswith("accuracy.d")]
    movers = list(dict.fromkeys(int(c.split(".", 2)[1][1:]) for c in acc_cols))
    regions = list(dict.fromkeys(c.split(".", 2)[2] for c in acc_cols))
    out = []
    for info, mine in table.complete_runs():
        history, seen = [], set()
        for row in mine:
            er = row.get("eval_round")
            if not finite(er) or er in seen:
                continue
            seen.add(er)
            history.append({"round": int(er), "cacc": row["cacc"], "static": row["static_accuracy"],
                            "movers": [[row[f"accuracy.d{d}.{r}"] for r in regions] for d in movers]})
        end = max(mine, key=lambda r: r["round"])
        final = {k: v for k, v in end.items() if finite(v)}
        forgetting = [end.get(f"forgetting.{r}") for r in regions]
        forgetting = [v for v in forgetting if finite(v)]
        final["forgetting.mean"] = statistics.fmean(forgetting) if forgetting else math.nan
        out.append({"label": next(lab for p, lab in label_of if p == info[PARAMS]),
                    "regime": regime_of[info[SAMPLES]], "seed": info["seed"], "wall": info["wall_s"] or math.nan,
                    "final": final, "history": history, "movers": movers, "regions": regions})
    return out


def per_seed(runs: list[dict], label: str, regime: str, column: str) -> dict[int, float]:
    return {r["seed"]: r["final"].get(column, math.nan) for r in runs if r["label"] == label and r["regime"] == regime}


def mean_sd(values: list[float], digits: int = 3) -> str:
    values = [v for v in values if finite(v)]
    if not values:
        return "n/a"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ({sd:.{digits}f})"


def interval(d: tuple[float, float, float, int], fmt: str = "{:+.3f}") -> str:
    mean, lo, hi, n = d
    if n == 0:
        return "n/a"
    if n == 1:
        return fmt.format(mean) + " (1 seed)"
    mark = " **" if lo > 0 else (" (-)" if hi < 0 else "")
    return f"{fmt.format(mean)} [{fmt.format(lo)}, {fmt.format(hi)}]{mark}"


def tables(runs: list[dict], labels: list[str]) -> list[str]:
    out = []
    for regime in REGIMES:
        mine = [r for r in runs if r["regime"] == regime]
        if not mine:
            continue
        out += [f"**{regime}**: final values, mean (std) over seeds", "",
                "| method | CAcc | acc. 1 / 3 / 5 evals after arrival | rounds to 90% of the area's static | "
                "forgetting | backward transfer | static own-area | kB sent per device per round | wall/run |",
                "|---|---|---|---|---|---|---|---|---|"]
        for label in labels:
            rs = [r for r in mine if r["label"] == label]
            if not rs:
                continue
            col = lambda c: [r["final"].get(c, math.nan) for r in rs]  # noqa: E731
            after = " / ".join(mean_sd(col(f"adaptation.after{k}"), 2) for k in (1, 3, 5))
            kb = [v / 1000 for v in col("sent_bytes") if finite(v)]
            out.append(f"| {label} | {mean_sd(col('cacc'))} | {after} | {mean_sd(col('adaptation.rounds_to_90'), 1)} "
                       f"| {mean_sd(col('forgetting.mean'))} | {mean_sd(col('forgetting.bwt'))} | "
                       f"{mean_sd(col('static_accuracy'))} | {mean_sd(kb, 1)} | "
                       f"{statistics.fmean(r['wall'] for r in rs):.0f} s |")
        out += ["", f"**{regime}**: difference to the compute control, paired per seed, mean [95% CI] "
                "(** : the interval is above zero; (-) : below)", "",
                "| method | " + " | ".join(label for _, label, _ in COMPARED) + " |",
                "|---|" + "---|" * len(COMPARED)]
        for label in labels:
            if label == CONTROL or not any(r["label"] == label for r in mine):
                continue
            cells = [interval(paired(per_seed(runs, label, regime, c), per_seed(runs, CONTROL, regime, c)), f)
                     for c, _, f in COMPARED]
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
    return out


def write_runs(runs: list[dict], path: Path) -> None:
    columns = sorted({c for r in runs for c in r["final"]})
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "regime", "seed", "wall_s"] + columns)
        for r in runs:
            w.writerow([r["label"], r["regime"], r["seed"], f"{r['wall']:.1f}"]
                       + [f"{r['final'].get(c, math.nan):.6g}" for c in columns])


def arrival_curves(run: dict, span: int = 6) -> np.ndarray:
    """Mean accuracy of the run's movers on the area they entered, 0..span-1 evaluations after each arrival. The
    scenario's tour is known: the movers are listed by id, 4 per starting area, and every 30 rounds each mover
    enters the next area."""
    rounds = [h["round"] for h in run["history"]]
    acc = np.array([h["movers"] for h in run["history"]])  # [evals, movers, regions]
    n_regions = acc.shape[2]
    curves = []
    for m in range(acc.shape[1]):
        start = (m // 4) % n_regions  # movers are listed area by area, 4 per area, touring to the next area
        for move in range(1, 4):
            entered = (start + move) % n_regions
            first = next((k for k, r in enumerate(rounds) if r > 30 * move), None)
            if first is None or first + span > len(rounds):
                continue
            curves.append(acc[first:first + span, m, entered])
    return np.array(curves).mean(0) if curves else np.full(span, np.nan)


def figures(runs: list[dict], labels: list[str], out: Path, rounds: int, partition: str) -> list[str]:
    from matplotlib.figure import Figure

    written = []
    for regime in REGIMES:
        mine = [r for r in runs if r["regime"] == regime]
        if not mine:
            continue
        fig = Figure(figsize=(7.5, 4.2))
        ax = fig.subplots()
        for k, label in enumerate(labels):
            rs = [r for r in mine if r["label"] == label]
            if not rs:
                continue
            x = [h["round"] for h in rs[0]["history"]]
            y = np.array([[h["cacc"] for h in r["history"]] for r in rs])
            ax.plot(x, y.mean(0), color=f"C{k}", label=label, linewidth=2 if label in (DEFAULT, CONTROL) else 1.2)
            if len(rs) > 1:
                ax.fill_between(x, y.min(0), y.max(0), color=f"C{k}", alpha=0.12, linewidth=0)
        for m in range(30, rounds, 30):
            ax.axvline(m, color="0.6", linestyle=":", linewidth=1)
        ax.set(xlabel="round", ylabel="CAcc (sum over the 4 areas)",
               title=f"Fashion-MNIST, {split_name(partition)}, {regime}")
        ax.legend(fontsize=7, loc="upper left")
        name = f"cacc_{REGIMES[regime]}.png"
        fig.savefig(out / name, dpi=100)
        written.append(name)

        fig = Figure(figsize=(6.5, 4.2))
        ax = fig.subplots()
        for k, label in enumerate(labels):
            rs = [r for r in mine if r["label"] == label]
            if rs and label not in ("FL", "Local"):
                curve = np.nanmean([arrival_curves(r) for r in rs], axis=0)
                ax.plot(np.arange(len(curve)), curve, marker="o", color=f"C{k}", label=label)
        ax.set(xlabel="evaluations (5 rounds each) after entering an area",
               ylabel="movers' accuracy on the area entered", title=f"adaptation after arrival, {regime}")
        ax.legend(fontsize=7, loc="lower right")
        name = f"adaptation_{REGIMES[regime]}.png"
        fig.savefig(out / name, dpi=100)
        written.append(name)

        shown = [label for label in labels if any(r["label"] == label for r in mine)]
        cols = min(4, len(shown)) or 1
        rows_n = math.ceil(len(shown) / cols) or 1
        fig = Figure(figsize=(3.6 * cols, 2.8 * rows_n + 0.6))
        axes = np.atleast_1d(fig.subplots(rows_n, cols, sharex=True, sharey=True, squeeze=False)).ravel()
        for ax, label in zip(axes, shown):
            run = next(r for r in mine if r["label"] == label)
            x = [h["round"] for h in run["history"]]
            acc = np.array([h["movers"][0] for h in run["history"]])
            for a, region in enumerate(run["regions"]):
                ax.plot(x, acc[:, a], label=region)
            for m in range(30, rounds, 30):
                ax.axvline(m, color="0.6", linestyle=":", linewidth=1)
            ax.set_title(label if len(label) < 34 else label.replace(", ", ",\n", 1), fontsize=8)
        for ax in axes[len(shown):]:
            ax.set_visible(False)
        axes[0].legend(fontsize=7)
        run = mine[0]
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
    p.add_argument("--seeds", default=None, help="default 0-9 (100-102 with --validation)")
    p.add_argument("--validation", action="store_true", help="the validation seeds 100-102, where variants are chosen")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="60 rounds and four methods (a smoke run)")
    p.add_argument("--partition", default="hard",
                   help="learning.partition of the four areas: hard (no shared class, the paper's), dirichlet(0.5) "
                        "(classes shared unevenly) or iid")
    p.add_argument("--regimes", default="200,20", help="samples per round, comma-separated (default 200,20)")
    p.add_argument("--methods", default=None,
                   help="a subset of the methods, as 1-based positions in the table's order (e.g. 1,2,5,6)")
    p.add_argument("--out", help="result folder (default benchmarks/results/c2fl[-split][-validation])")
    args = p.parse_args(argv)
    from fieldlearn.sweep import SweepError, parse_seeds

    seeds_text = args.seeds or ("100-102" if args.validation else "0-9")
    try:
        seeds = parse_seeds(seeds_text)
    except SweepError as exc:
        p.error(str(exc))
    if args.out is None:
        tag = "" if args.partition == "hard" else "-" + re.sub(r"[^\w.]+", "", args.partition)
        args.out = str(REPO / "benchmarks" / "results" / f"c2fl{tag}{'-validation' if args.validation else ''}")
    rounds = 60 if args.quick else 120
    methods = {k: v for k, v in METHODS.items() if not args.quick or k in QUICK}
    if args.validation and not args.quick:
        methods.update(VALIDATION_EXTRA)
    if args.methods:
        names = list(methods)
        methods = {names[int(k) - 1]: methods[names[int(k) - 1]] for k in args.methods.split(",")}
        if CONTROL not in methods:
            p.error("--methods must include the compute control (every comparison is against it)")
    regimes = [int(x) for x in args.regimes.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    runs, failures, _ = run_sweep(out / "sweep", seeds, regimes, methods, rounds, args.workers, args.partition)
    total = time.perf_counter() - started
    labels = list(methods)
    runs.sort(key=lambda r: (labels.index(r["label"]), list(REGIMES).index(r["regime"]), r["seed"]))
    simulated = sum(r["wall"] for r in runs if finite(r["wall"]))
    lines = [f"C2FL on Fashion-MNIST (14x14, MLP 196-64-10), {split_name(args.partition)} into 4 areas, {rounds} "
             f"rounds, seeds {seeds_text}{' (validation)' if args.validation else ''}; CAcc = mean over the 16 movers "
             "of the summed accuracy on the 4 areas' validation subsamples. "
             f"{len(runs)} runs, {simulated / 60:.1f} min of simulation (one process, one torch thread per run).",
             ""] + tables(runs, labels)
    text = "\n".join(lines)
    print()
    print(text)
    (out / "table.md").write_text(text + "\n")
    if runs:
        write_runs(runs, out / "runs.csv")
        files = ["table.md", "runs.csv"] + figures(runs, labels, out, rounds, args.partition)
        print("files:", ", ".join(files), "in", out)
    print(f"wall time {total:.0f} s ({total / 60:.1f} min) on {args.workers} processes")
    if failures:
        print(f"{len(failures)} runs failed (see the sweep folder's failures.csv)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
