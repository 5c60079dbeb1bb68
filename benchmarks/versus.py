"""Two commits side by side in one process: the calculus programs of `scaling.py` from each commit, rounds interleaved.

    python benchmarks/versus.py BEFORE [AFTER] [--sizes 100,1000,10000,100000] [--programs SCR,S+C,gradient]

On a shared machine the speed of one process drifts by up to 2x within minutes, so two runs one after the other
cannot show a 10% change. Here each commit's `fieldlearn` (from `git archive`, AFTER defaults to the working tree)
is imported under its own name into one process, every program gets one VM per commit on the same graph, and blocks
of rounds alternate between them; each time is the best of `--repeats` blocks, and the ratio is AFTER over BEFORE
(below 1: AFTER is faster). It also checks that both commits give the same results, bit for bit.
"""
from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ("SCR", "S+C", "gradient")


def export(rev: str | None, into: Path, name: str) -> str:
    """The `fieldlearn` package of commit `rev` (None: the working tree) as the importable package `name`."""
    target = into / name
    if rev is None:
        subprocess.run(["cp", "-r", str(ROOT / "fieldlearn"), str(target)], check=True)
    else:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "fieldlearn"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
        (into / "fieldlearn").rename(target)
    return name


def program(name: str, pkg, lib):
    """The program `name` written with one commit's package."""
    if name == "SCR":
        def scr():
            region = lib.regions(0.2)
            return region.broadcast(region.collect_sum(1.0))
        return scr
    if name == "S+C":
        def s_and_c():
            _, potential = lib.elect_leaders(radius=0.2)
            return lib.collect(potential, 1.0, op="sum")
        return s_and_c
    return lambda: lib.distance_to(pkg.sense("source"))


def compare(names: list[str], prog: str, n: int, repeats: int, budget: float) -> tuple[list[float], bool]:
    """Best seconds per round of `prog` on n devices for each package, and whether their results agree bit for bit."""
    vms = []
    for name in names:
        pkg = importlib.import_module(name)
        lib = importlib.import_module(name + ".lib")
        net = pkg.Network.random_geometric(n, mean_degree=8.0, seed=1)
        g = net.graph
        inbox = pkg.Inbox(g.indptr, g.neighbours, {"distance": g.distance}, n_devices=n)
        vm = pkg.RoundVM(program(prog, pkg, lib))
        vm.sensors = {"source": net.ids == 0}
        ids = np.arange(n)
        out = [vm.round(ids, inbox) for _ in range(20)][-1]
        vms.append((vm, ids, inbox, np.asarray(out)))
    same = all(v[3].dtype == vms[0][3].dtype and v[3].tobytes() == vms[0][3].tobytes() for v in vms)
    t0 = time.perf_counter()
    vms[0][0].round(vms[0][1], vms[0][2])
    rounds = max(3, int(budget / repeats / len(names) / max(time.perf_counter() - t0, 1e-7)))
    best = [float("inf")] * len(names)
    for _ in range(repeats):
        for i, (vm, ids, inbox, _) in enumerate(vms):
            t0 = time.perf_counter()
            for _ in range(rounds):
                vm.round(ids, inbox)
            best[i] = min(best[i], (time.perf_counter() - t0) / rounds)
    return best, same


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before", help="a commit (e.g. HEAD~1)")
    p.add_argument("after", nargs="?", default=None, help="a commit (default: the working tree)")
    p.add_argument("--sizes", default="100,1000,10000,100000")
    p.add_argument("--programs", default=",".join(PROGRAMS))
    p.add_argument("--repeats", type=int, default=15, help="blocks of rounds per version (the best counts)")
    p.add_argument("--budget", type=float, default=6.0, help="seconds of rounds per cell, all versions together")
    args = p.parse_args()
    programs = [s for s in args.programs.split(",") if s]
    unknown = sorted(set(programs) - set(PROGRAMS))
    if unknown:
        p.error(f"--programs: unknown {', '.join(unknown)} (choose from {', '.join(PROGRAMS)})")
    with tempfile.TemporaryDirectory() as tmp:
        into = Path(tmp)
        try:
            names = [export(args.before, into, "fl_before"), export(args.after, into, "fl_after")]
        except subprocess.CalledProcessError as err:
            sys.exit(f"versus: cannot export a commit: {err.stderr.decode().strip() if err.stderr else err}")
        sys.path.insert(0, tmp)
        after = args.after or "working tree"
        print(f"{args.before} against {after}, one process, rounds interleaved, best of {args.repeats} blocks")
        print(f"| program | devices | {args.before} ms/round | {after} ms/round | ratio | same results |")
        print("|---|---:|---:|---:|---:|---|")
        for prog in programs:
            for n in (int(s) for s in args.sizes.split(",") if s):
                (b, a), same = compare(names, prog, n, args.repeats, args.budget)
                print(f"| {prog} | {n:,} | {b * 1e3:.3f} | {a * 1e3:.3f} | {a / b:.2f}x | {'yes' if same else 'NO'} |",
                      flush=True)


if __name__ == "__main__":
    main()
