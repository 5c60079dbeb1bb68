"""C2FL at scale: what a round costs, block by block, from the paper's 48 devices to 1,024 and 4,096.

    python benchmarks/c2fl_scale.py                        # 48, 1,024 (clique and sparse links), 4,096 devices
    python benchmarks/c2fl_scale.py --sizes 48,1024 --rounds 3
    python benchmarks/c2fl_scale.py --sizes 1024 --links clique --threads 2 --allocator both
    python benchmarks/c2fl_scale.py --check-slow-path 120  # 48 devices with and without the stacked linear layers
    python benchmarks/c2fl_scale.py --sizes 1024 --links clique --eval-precision both  # float32 and bfloat16 CAcc
    python benchmarks/c2fl_scale.py --sizes 1024 --links clique --allocator both --huge-pages both
    python benchmarks/c2fl_scale.py --sizes 1024 --links clique --allocator keep,jemalloc,tcmalloc
    python benchmarks/c2fl_scale.py --sizes 1024 --links clique --threads 2 --block-clock wall --eval-every 5 --rounds 5

The configuration is `scenarios/c2fl-fashion.yaml` (Fashion-MNIST 28x28, MLP 784-128-10, 20 samples per round, 300
replayed per mover, two epochs and the post-merge pass) with every area scaled up: 4 areas of D devices each, a
quarter of them touring the areas every 30 rounds. With the scenario's own radio radius every area is one clique (D
devices hear each other: D^2 links); `sparse` uses radius 0.7 (about 4-8 links per device). Each size runs in a
fresh process (`--threads` torch threads, default one) so that its peak RSS is its own; `--allocator` chooses
between glibc keeping freed blocks (`keep_freed_memory`, as the simulator does: no page zeroing, but freed blocks
fragment, so the peak RSS is above the live peak) and glibc's own policy (model-sized blocks go back to the system
when freed: the peak RSS is the live peak, and every new one is zeroed again), or jemalloc or tcmalloc preloaded
(`LD_PRELOAD`) and keeping freed pages (they reuse them with little fragmentation; Debian: `libjemalloc2`,
`libtcmalloc-minimal4`); `--huge-pages` has torch back its large tensors with transparent huge pages
(`THP_MEM_ALLOC_ENABLE=1`), so that a fresh block faults in 2 MB pages instead of 4 kB ones. The blocks' times are
the cumulative CPU times cProfile gives the learning blocks over the timed rounds (`--block-clock wall`: their clock
times, what a run with several threads waits for), from round 31 on (after the first move, so that movers replay
their memories; the rounds before are run untimed).

The table: seconds per round, of which local training (`train_locally`, the post-merge pass included), the regional
model (`classwise_regional_mean`: collect and broadcast of the models) and the evaluation (CAcc of every mover on
every area, static devices on their own; here after every round, where the scenario evaluates every 5th: `--eval-every
5 --rounds 5` times the scenario's own cadence, and the evaluation column is then its share of a round), as CPU
seconds (`s/round` too; `wall` is the clock), and the peak RSS.
"""
from __future__ import annotations

import argparse
import copy
import cProfile
import ctypes.util
import itertools
import json
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

from memory_usage import peak_rss_mib

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "c2fl-fashion.yaml"
HUGE_PAGES = "THP_MEM_ALLOC_ENABLE"  # torch's CPU allocator asks for transparent huge pages for blocks of 2 MB and more
BLOCKS = {"train": "train_locally", "regional model": "classwise_regional_mean", "evaluation": "evaluation"}


def scaled(per_area: int, sparse: bool) -> dict:
    """c2fl-fashion's raw scenario with `per_area` devices in each area (a quarter of them movers)."""
    from fieldlearn.sim.loader import read_scenario_file

    data, _, _ = read_scenario_file(SCENARIO)
    data = copy.deepcopy(data)
    movers = per_area // 4
    cols = int(round((per_area * 4 / 3) ** 0.5))  # an area of 8 x 6: about as many columns as rows x 4/3
    static_rows = -(-(per_area - movers) // cols)
    mover_rows = -(-movers // cols)
    spacing = min(8.0 / cols, 6.0 / (static_rows + mover_rows))
    deployments = []
    for k, dep in enumerate(d for d in data["deployments"] if "mobility" in d):
        x0 = 100 * k + spacing / 2
        deployments.append({"name": f"static{k}", "kind": "grid", "count": per_area - movers, "cols": cols,
                            "spacing": spacing, "origin": [x0, spacing / 2]})
        deployments.append({"name": f"movers{k}", "kind": "grid", "count": movers, "cols": cols, "spacing": spacing,
                            "origin": [x0, spacing / 2 + static_rows * spacing], "mobility": dep["mobility"]})
    data["deployments"] = deployments
    if sparse:
        data["links"]["radius"] = 0.7
    data["learning"]["samples_per_round"] = 20
    data["exports"] = {"metrics": ["cacc", "static_accuracy"], "figures": {"timeseries": False}}
    return data


def child(per_area: int, sparse: bool, rounds: int, start: int, keep: bool = True, threads: int = 1,
          bfloat16: bool = False, wall_blocks: bool = False, eval_every: int = 1) -> dict:
    """One size in this process: time `rounds` rounds from round `start` on (after the first move, when movers
    replay their memories), evaluating every `eval_every` rounds, profile the blocks, read the peak RSS."""
    import torch

    from fieldlearn.calculus import keep_freed_memory
    from fieldlearn.calculus.allocator import malloc_name
    from fieldlearn.sim import resolve_scenario
    from fieldlearn.sim.engine import Engine
    from fieldlearn.sim.recording import Recorder

    torch.set_num_threads(1)
    kept = keep and keep_freed_memory()  # as the simulator's command line does
    data = scaled(per_area, sparse)
    data["learning"]["threads"] = threads  # the simulator sets torch's threads from the learning block
    data["duration"] = {"rounds": start + rounds}
    data["learning"]["eval_every"] = eval_every  # 1: after every timed round, to time it
    data["learning"]["eval_precision"] = "bfloat16" if bfloat16 else "float32"
    engine = Engine(resolve_scenario(data, SCENARIO.parent, name="c2fl-scale"))
    recorder = Recorder(engine)
    engine.run(until=float(start))
    profile = cProfile.Profile(time.perf_counter if wall_blocks else time.process_time)
    started, wall = time.process_time(), time.perf_counter()
    profile.enable()
    engine.run()
    recorder.finish(engine)
    profile.disable()
    total, wall = time.process_time() - started, time.perf_counter() - wall
    stats = pstats.Stats(profile)
    blocks = {}
    for label, name in BLOCKS.items():
        blocks[label] = sum(v[3] for k, v in stats.stats.items() if k[2] == name) / rounds
    links = engine.graph.n_links
    return {"devices": engine.capacity, "links": links, "round_s": total / rounds, "wall_s": wall / rounds,
            "threads": threads, "eval_precision": data["learning"]["eval_precision"], "eval_every": eval_every,
            "block_clock": "wall" if wall_blocks else "cpu", **blocks,
            "peak_mib": peak_rss_mib(), "malloc": malloc_name(), "kept": bool(kept),
            "cacc": recorder.final.get("cacc")}


def slow_path_check(rounds: int) -> dict:
    """The 48-device scenario (c2fl-fashion's own sizes, 20 samples per round) for `rounds` rounds with the stacked
    linear layers and with plain nn.Linear training (the path before them), in this process: the largest difference
    between the two runs' final models and both CAcc values."""
    import importlib

    import torch

    from fieldlearn.learning.context import RESOURCE
    from fieldlearn.sim import resolve_scenario
    from fieldlearn.sim.engine import Engine
    from fieldlearn.sim.recording import Recorder

    torch.set_num_threads(1)
    train_module = importlib.import_module("fieldlearn.learning.train")
    fast_template = train_module.training_template
    out = {}
    for label, template_of in (("stacked", fast_template), ("nn.Linear", lambda template: template)):
        train_module.training_template = template_of  # the benchmark swaps the fast path out, nothing else
        try:
            data = scaled(12, False)
            data["duration"] = {"rounds": rounds}
            engine = Engine(resolve_scenario(data, SCENARIO.parent, name="c2fl-scale-check"))
            recorder = Recorder(engine)
            engine.run()
            recorder.finish(engine)
        finally:
            train_module.training_template = fast_template
        out[label] = {"cacc": recorder.final.get("cacc"), "models": engine.vm.resources[RESOURCE].latest}
    a, b = out["stacked"]["models"], out["nn.Linear"]["models"]
    diff = max(float((a.params[k] - b.params[k]).abs().max()) for k in a.params)
    return {"rounds": rounds, "cacc_stacked": out["stacked"]["cacc"], "cacc_plain": out["nn.Linear"]["cacc"],
            "max_model_difference": diff}


class Allocator(NamedTuple):
    """An --allocator choice: the library to preload (None: glibc's malloc), the allocator a run must then report,
    the Debian package that has the library, the variables it needs, whether it keeps freed blocks, the table's
    label."""

    library: str | None
    malloc: str
    package: str
    variables: dict
    keeps: bool
    label: str


ALLOCATORS = {
    "keep": Allocator(None, "glibc", "libc6", {}, True, "glibc, keep freed"),
    "default": Allocator(None, "glibc", "libc6", {}, False, "glibc default"),
    "jemalloc": Allocator("jemalloc", "jemalloc", "libjemalloc2", {}, True, "jemalloc, keep freed"),
    "tcmalloc": Allocator("tcmalloc_minimal", "tcmalloc", "libtcmalloc-minimal4", {"TCMALLOC_RELEASE_RATE": "0"}, True,
                          "tcmalloc, keep freed"),
}


def allocators(choice: str) -> list[str]:
    """The allocators a --allocator value names: `both` (glibc keeping and glibc's own), `all`, or a comma list."""
    names = {"both": ["keep", "default"], "all": list(ALLOCATORS)}.get(choice, choice.split(","))
    unknown = [n for n in names if n not in ALLOCATORS]
    if unknown:
        raise SystemExit(f"--allocator: unknown {', '.join(unknown)} (choose from {', '.join(ALLOCATORS)}, both, all)")
    for name in names:
        library = ALLOCATORS[name].library
        if library and not ctypes.util.find_library(library):
            raise SystemExit(f"--allocator {name}: lib{library}.so is not installed (Debian: apt-get install "
                             f"{ALLOCATORS[name].package})")
    return names


def measure(per_area: int, sparse: bool, rounds: int, start: int, allocator: str = "keep", threads: int = 1,
            bfloat16: bool = False, wall_blocks: bool = False, huge_pages: bool = False, eval_every: int = 1) -> dict:
    chosen = ALLOCATORS[allocator]
    env = {k: v for k, v in os.environ.items() if k not in (HUGE_PAGES, "LD_PRELOAD", "TCMALLOC_RELEASE_RATE")}
    env.update(chosen.variables)
    if chosen.library:
        env["LD_PRELOAD"] = ctypes.util.find_library(chosen.library)
    if huge_pages:
        env[HUGE_PAGES] = "1"
    out = subprocess.run([sys.executable, __file__, "--child",
                          f"{per_area},{int(sparse)},{rounds},{start},{int(chosen.keeps)},{threads},{int(bfloat16)},"
                          f"{int(wall_blocks)},{eval_every}"],
                         capture_output=True, text=True, timeout=3600, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:] or f"the child process exited with {out.returncode}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if r["malloc"] != chosen.malloc or r["kept"] != chosen.keeps:
        raise RuntimeError(f"--allocator {allocator}: the run had {r['malloc']} keeping freed blocks: {r['kept']}")
    return r


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="48,1024,4096", help="devices in all (4 areas)")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per size")
    p.add_argument("--start", type=int, default=31, help="the first timed round (after the first move at 30)")
    p.add_argument("--links", choices=("clique", "sparse", "both"), default="both",
                   help="at 1,024 devices and more: every area one clique, sparse links (radius 0.7), or both "
                        "(above 1,024 always sparse)")
    p.add_argument("--allocator", default="keep",
                   help="keep: glibc keeps freed blocks (keep_freed_memory, as the simulator does); default: glibc's "
                        "own policy (freed model-sized blocks go back to the system: the live peak); jemalloc, "
                        "tcmalloc: that allocator preloaded, keeping freed pages; both (keep,default); all; or a "
                        "comma list")
    p.add_argument("--huge-pages", choices=("off", "on", "both"), default="off",
                   help=f"on: the runs set {HUGE_PAGES}=1 (torch backs its large tensors with transparent huge pages: "
                        "a fresh model-sized block faults in 2 MB pages, not 4 kB ones); both: one run each")
    p.add_argument("--threads", type=int, default=1, help="torch threads in each run (the table's s/round is CPU "
                   "time, wall is the clock)")
    p.add_argument("--eval-precision", choices=("float32", "bfloat16", "both"), default="float32",
                   help="the evaluation's forward passes (learning.eval_precision), or both, one run each")
    p.add_argument("--block-clock", choices=("cpu", "wall"), default="cpu",
                   help="what the blocks' times count: CPU seconds (all threads together) or the clock (what a run "
                        "with several threads waits)")
    p.add_argument("--eval-every", type=int, default=1,
                   help="evaluate every N rounds: 1 (default) times an evaluation in every round; the scenario's own "
                        "cadence is 5 (with --rounds 5 one evaluation falls in the timed rounds)")
    p.add_argument("--check-slow-path", type=int, metavar="ROUNDS",
                   help="only compare the 48-device run over ROUNDS rounds with and without the stacked linear layers")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.check_slow_path:
        print(json.dumps(slow_path_check(args.check_slow_path)))
        return 0
    if args.child:
        per_area, sparse, rounds, start, keep, threads, bfloat16, wall_blocks, every = (
            int(x) for x in args.child.split(","))
        print(json.dumps(child(per_area, bool(sparse), rounds, start, bool(keep), threads, bool(bfloat16),
                               bool(wall_blocks), every)))
        return 0
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        kinds = {"clique": (False,), "sparse": (True,), "both": (False, True)}[args.links]
        for sparse in (kinds if n >= 1024 else (False,)):
            if n > 1024 and not sparse:
                continue  # 4,096 devices in cliques of 1,024 are 4M links: measured sparse only
            for allocator, low, huge in itertools.product(
                    allocators(args.allocator),
                    {"float32": (False,), "bfloat16": (True,), "both": (False, True)}[args.eval_precision],
                    {"off": (False,), "on": (True,), "both": (False, True)}[args.huge_pages]):
                r = measure(n // 4, sparse, args.rounds, args.start, allocator, args.threads, low,
                            args.block_clock == "wall", huge, args.eval_every)
                r["links_kind"] = "sparse (radius 0.7)" if sparse else "clique per area"
                r["allocator"] = ALLOCATORS[allocator].label + (", huge pages" if huge else "")
                rows.append(r)
                print(json.dumps(r), flush=True)
    print("\n| devices | links | kind | allocator | threads | blocks timed by | evaluation in | evaluated every | "
          "CPU s/round | wall s/round | train | regional model | evaluation | regional / train | evaluation / train | "
          "peak RSS | CAcc |")
    print("|---:|---:|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = r["regional model"] / r["train"] if r["train"] else float("nan")
        eval_ratio = r["evaluation"] / r["train"] if r["train"] else float("nan")
        print(f"| {r['devices']:,} | {r['links']:,} | {r['links_kind']} | {r['allocator']} | {r.get('threads', 1)} | "
              f"{r['block_clock']} | {r['eval_precision']} | {r.get('eval_every', 1)} | "
              f"{r['round_s']:.2f} | {r.get('wall_s', float('nan')):.2f} | "
              f"{r['train']:.2f} | {r['regional model']:.2f} | {r['evaluation']:.2f} | {ratio:.2f}x | "
              f"{eval_ratio:.2f}x | {r['peak_mib']:,.0f} MiB | {r['cacc']:.6f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
