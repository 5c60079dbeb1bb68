"""C2FL on a city's streets: C2FL, CL, FL and Local on `scenarios/c2fl-vehicles.yaml`, 5 seeds.

    python benchmarks/c2fl_vehicles.py                 # seeds 0-4, 4 methods: about 10 min on 2 cores
    python benchmarks/c2fl_vehicles.py --seeds 0 --rounds 60   # a smoke run

The scenario replays 300 SUMO vehicles on a 6x6-block grid city (the shipped FCD trace: no SUMO needed) for 300 s,
one round per SUMO second; about 85 vehicles are on the road at once, each for 27 to 198 s. The four districts are
the learning regions, with disjoint class sets (hard split of Fashion-MNIST, 14x14, MLP 196-32-10, 32 fresh samples
of the district a device is in per round); one static road-side unit per district. A vehicle joins with an empty
model when it departs and is forgotten when it arrives, so what it knows comes from its own trip, its replay memory
(C2FL, CL) and the regional models (C2FL, FL).

Per run the table reports, over the evaluations from round 100 on (every 10 rounds, 200 validation samples per
district): the vehicles' mean accuracy on each district (the vehicles on the road at that evaluation), their CAcc
(the sum over the districts) and the road-side units' accuracy on their own district; and the run's wall time.
Means (std) over the seeds. Runs go through `fieldlearn.sweep` (one process and one torch thread each, resumable in
OUT/sweep). Outputs (default benchmarks/results/c2fl-vehicles): table.md, runs.csv, cacc.png (CAcc over time per
method) and city.png (the city at 60 s and 150 s: streets, districts, vehicles and road-side units by district).
"""
from __future__ import annotations

import argparse
import csv
import math
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from c2fl import finite, mean_sd  # noqa: E402  (the statistics of the 48-device benchmark)

SCENARIO = REPO / "scenarios" / "c2fl-vehicles.yaml"
COMMON = ["exports.values=[]", "exports.metrics=[eval_round, cacc, static_accuracy, accuracy]", "exports.interval=10",
          "exports.figures.timeseries=false", "exports.figures.snapshots=[]"]
METHODS = {"C2FL": {"method": "c2fl"}, "CL": {"method": "cl"}, "FL": {"method": "fl"}, "Local": {"method": "local"}}
PARAMS = "program.params.method"
FROM_ROUND = 100
DISTRICTS = ("district0", "district1", "district2", "district3")


def run_sweep(out: Path, seeds: list[int], rounds: int, workers: int) -> tuple[Any, float]:
    from fieldlearn.sweep import sweep

    started = time.perf_counter()
    table = sweep(SCENARIO, seeds=seeds, grid={PARAMS: [p["method"] for p in METHODS.values()]},
                  sets=COMMON + [f"duration.rounds={rounds}"], workers=workers, out=out, metric="cacc",
                  run_figures=False, progress=True, log=lambda s: print(f"[sweep] {s}", flush=True))
    return table, time.perf_counter() - started


def runs_of(table: Any, from_round: int = FROM_ROUND) -> list[dict]:
    """Every complete run: {method, seed, wall, districts: [mean accuracy of the vehicles per district], cacc,
    static, history: [(round, cacc)]}, the district and CAcc values averaged over evaluations from `from_round` on."""
    label = {p["method"]: name for name, p in METHODS.items()}
    out = []
    for info, mine in table.complete_runs():
        evals, seen = [], set()
        for row in mine:
            er = row.get("eval_round")
            if finite(er) and er not in seen:
                seen.add(er)
                evals.append(row)
        vehicles = sorted({int(c.split(".")[1][1:]) for c in mine[0] if c.startswith("accuracy.d")})
        history = [(int(r["eval_round"]), r["cacc"]) for r in evals]
        late = [r for r in evals if r["eval_round"] >= from_round]
        per_district = []
        for d in DISTRICTS:
            means = [np.nanmean(vals) for r in late
                     if (vals := [r[f"accuracy.d{v}.{d}"] for v in vehicles if finite(r[f"accuracy.d{v}.{d}"])])]
            per_district.append(float(np.mean(means)) if means else math.nan)
        caccs = [r["cacc"] for r in late if finite(r["cacc"])]
        statics = [r["static_accuracy"] for r in late if finite(r["static_accuracy"])]
        out.append({"method": label[info[PARAMS]], "seed": info["seed"], "wall": info["wall_s"] or math.nan,
                    "districts": per_district, "cacc": statistics.fmean(caccs) if caccs else math.nan,
                    "static": statistics.fmean(statics) if statics else math.nan, "history": history})
    return out


def table_lines(runs: list[dict]) -> list[str]:
    lines = ["| method | " + " | ".join(f"vehicles on {d}" for d in DISTRICTS) + " | vehicles' CAcc (of 4) | "
             "road-side units, own district | wall/run |", "|---|" + "---|" * (len(DISTRICTS) + 3)]
    for name in METHODS:
        rs = [r for r in runs if r["method"] == name]
        if not rs:
            continue
        cells = [mean_sd([r["districts"][k] for r in rs]) for k in range(len(DISTRICTS))]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean_sd([r['cacc'] for r in rs])} | "
                     f"{mean_sd([r['static'] for r in rs])} | {statistics.fmean(r['wall'] for r in rs):.0f} s |")
    return lines


def write_runs(runs: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "seed", "wall_s", *DISTRICTS, "cacc", "static_accuracy"])
        for r in runs:
            w.writerow([r["method"], r["seed"], f"{r['wall']:.1f}", *(f"{v:.6g}" for v in r["districts"]),
                        f"{r['cacc']:.6g}", f"{r['static']:.6g}"])


def cacc_figure(runs: list[dict], path: Path, seeds: str, from_round: int) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.subplots()
    for k, name in enumerate(METHODS):
        rs = [r for r in runs if r["method"] == name]
        if not rs:
            continue
        x = np.array([h[0] for h in rs[0]["history"]])
        y = np.array([[h[1] for h in r["history"]] for r in rs], dtype=float)
        some = np.isfinite(y).any(axis=0)  # evaluations where some vehicle had a model
        x, y = x[some], y[:, some]
        ax.plot(x, np.nanmean(y, axis=0), color=f"C{k}", label=name, linewidth=2 if name == "C2FL" else 1.3)
        if len(rs) > 1:
            ax.fill_between(x, np.nanmin(y, axis=0), np.nanmax(y, axis=0), color=f"C{k}", alpha=0.12, linewidth=0)
    ax.axvline(from_round, color="0.6", linestyle=":", linewidth=1)
    ax.set(xlabel="round (SUMO second)", ylabel="vehicles' CAcc (sum over the 4 districts)",
           title=f"c2fl-vehicles: 300 vehicles, 4 districts, hard split (seeds {seeds}; band: min-max)")
    ax.legend(fontsize=8, loc="lower right")
    fig.savefig(path, dpi=100)


def city_figure(out: Path) -> Path:
    """The city at 60 s and 150 s as the simulator draws it (streets, districts, devices by district); the
    scenario with a program that only senses, so nothing trains."""
    from fieldlearn import sense
    from fieldlearn.sim import load_scenario, run_scenario

    loaded = load_scenario(SCENARIO, ["duration.rounds=151", "exports.values=[]", "exports.metrics=[present]",
                                      "exports.figures.timeseries=false",
                                      "exports.figures.snapshots=[{times: [60, 150], file: city.png, links: true}]"])
    folder = out / "city-run"
    run_scenario(loaded, folder, force=True, program=lambda: {"district": sense("region")})
    shutil.copyfile(folder / "city.png", out / "city.png")
    return out / "city.png"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0-4")
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "c2fl-vehicles"))
    args = p.parse_args(argv)
    from fieldlearn.sweep import SweepError, parse_seeds

    try:
        seeds = parse_seeds(args.seeds)
    except SweepError as exc:
        p.error(str(exc))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table, elapsed = run_sweep(out / "sweep", seeds, args.rounds, args.workers)
    from_round = min(FROM_ROUND, args.rounds // 2)
    runs = runs_of(table, from_round)
    runs.sort(key=lambda r: (list(METHODS).index(r["method"]), r["seed"]))
    text = "\n".join([f"c2fl-vehicles: 300 SUMO vehicles replayed on a 6x6-block city, 4 districts (hard split of "
                      f"Fashion-MNIST 14x14, MLP 196-32-10), 4 road-side units, {args.rounds} rounds, seeds "
                      f"{args.seeds}. Vehicles' accuracy per district and CAcc: mean over the evaluations from round "
                      f"{from_round} on of the mean over the vehicles on the road; mean (std) over seeds. {len(runs)} "
                      f"runs in {elapsed:.0f} s on {args.workers} processes.", ""] + table_lines(runs))
    print()
    print(text)
    (out / "table.md").write_text(text + "\n")
    if runs:
        write_runs(runs, out / "runs.csv")
        cacc_figure(runs, out / "cacc.png", args.seeds, from_round)
        city_figure(out)
        print("files: table.md, runs.csv, cacc.png, city.png in", out)
    for f in table.failures:
        print(f"  FAILED {f['run']}: {str(f['error']).strip().splitlines()[-1]}", file=sys.stderr)
    return 1 if table.failures else 0


if __name__ == "__main__":
    sys.exit(main())
