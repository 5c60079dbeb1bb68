"""Two commits side by side in one process: the calculus programs of `scaling.py` (or two learning steps) from each
commit, rounds interleaved.

    python benchmarks/versus.py BEFORE [AFTER] [--sizes 100,1000,10000,100000] [--programs SCR,S+C,gradient]
    python benchmarks/versus.py BEFORE [AFTER] --programs train,model-sum --sizes 1024 --repeats 5

`train` is a C2FL round's local training on every device's 784-128-10 MLP (a quarter of the devices with 60
samples, the rest with 20; two epochs at batch 32, then the fine-tune's epoch at batch 16; torch's threads as set,
by default one per core); `model-sum` is what a collect over four stars computes (a clique's collect tree: the
models of the devices, 100k parameters each, summed into their star's centre, plus every device's own), through
the torch backend.

On a shared machine the speed of one process drifts by up to 2x within minutes, so two runs one after the other
cannot show a 10% change. Here each commit's `fieldlearn` (from `git archive`, AFTER defaults to the working tree)
is imported under its own name into one process, every program gets one VM per commit on the same graph, and blocks
of rounds alternate between them; each time is the best of `--repeats` blocks, and the ratio is AFTER over BEFORE
(below 1: AFTER is faster). It also checks that both commits give the same results, bit for bit.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ("SCR", "S+C", "gradient")
LEARNING = ("train", "model-sum")  # torch; at most MAX_LEARNING devices
MAX_LEARNING = 4096


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


def calculus_round(name: str, prog: str, n: int):
    """One round of the calculus program `prog` with one commit's package on n devices (after 20 to settle)."""
    pkg = importlib.import_module(name)
    lib = importlib.import_module(name + ".lib")
    net = pkg.Network.random_geometric(n, mean_degree=8.0, seed=1)
    g = net.graph
    inbox = pkg.Inbox(g.indptr, g.neighbours, {"distance": g.distance}, n_devices=n)
    vm = pkg.RoundVM(program(prog, pkg, lib))
    vm.sensors = {"source": net.ids == 0}
    ids = np.arange(n)
    for _ in range(19):
        vm.round(ids, inbox)
    return lambda: np.asarray(vm.round(ids, inbox))


def learning_step(name: str, prog: str, n: int):
    """One `train` or `model-sum` step (see the module's docstring) with one commit's package on n devices."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(0)
    if prog == "model-sum":
        be = importlib.import_module(name + ".calculus.backend").backend_for("torch")
        centre = np.arange(n) // -(-n // 4) * -(-n // 4)
        rows, cols = centre[centre != np.arange(n)], np.flatnonzero(centre != np.arange(n))
        indptr = torch.as_tensor(np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]))
        models = torch.randn(n, 100352, generator=g)
        own = torch.randn(n, 100352, generator=g)
        weights = torch.ones(len(cols))
        cols_t = torch.as_tensor(cols)

        hands_in = "initial" in inspect.signature(be.sparse_rows_times).parameters

        def sums():  # what collect computes: the children's sum plus each device's own value
            if hands_in:
                return be.sparse_rows_times(indptr, cols_t, weights, n, models, own).numpy()
            out = be.sparse_rows_times(indptr, cols_t, weights, n, models)
            out += own
            return out.numpy()

        return sums
    learning = importlib.import_module(name + ".learning")
    data_mod = importlib.import_module(name + ".learning.data")
    counts = np.where(np.arange(n) % 4 == 3, 60, 20)
    total = int(counts.sum())
    dataset = data_mod.Dataset(torch.rand(total, 784, generator=g), torch.randint(0, 10, (total,), generator=g), 10,
                               "synthetic")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sets = data_mod.IndexSets.from_lists([np.arange(a, a + c) for a, c in zip(starts, counts)])
    data = data_mod.DeviceData(dataset, sets)
    models = learning.ModelField.from_factory(
        lambda: nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)), n, seed=0)

    def training():
        kw = dict(optimiser="adam", lr=1e-3, weight_decay=1e-4)
        local = learning.train(models, data, epochs=2, batch_size=32, generator=torch.Generator().manual_seed(1), **kw)
        tuned = learning.train(local.models, data, epochs=1, batch_size=16, generator=torch.Generator().manual_seed(2),
                               **kw)
        return torch.cat([v.flatten() for v in tuned.models.params.values()]).numpy()

    return training


def compare(names: list[str], prog: str, n: int, repeats: int, budget: float) -> tuple[list[float], bool]:
    """Best seconds per step (a round, or a learning step) of `prog` on n devices for each package, and whether their
    results agree bit for bit."""
    make = learning_step if prog in LEARNING else calculus_round
    steps = [make(name, prog, n) for name in names]
    outs = [step() for step in steps]
    same = all(o.dtype == outs[0].dtype and o.tobytes() == outs[0].tobytes() for o in outs)
    t0 = time.perf_counter()
    steps[0]()
    least = 1 if prog in LEARNING else 3
    rounds = max(least, int(budget / repeats / len(names) / max(time.perf_counter() - t0, 1e-7)))
    best = [float("inf")] * len(names)
    for _ in range(repeats):
        for i, step in enumerate(steps):
            t0 = time.perf_counter()
            for _ in range(rounds):
                step()
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
    unknown = sorted(set(programs) - set(PROGRAMS) - set(LEARNING))
    if unknown:
        p.error(f"--programs: unknown {', '.join(unknown)} (choose from {', '.join(PROGRAMS + LEARNING)})")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if set(programs) & set(LEARNING) and max(sizes, default=0) > MAX_LEARNING:
        p.error(f"--sizes: the learning programs ({', '.join(LEARNING)}) run on at most {MAX_LEARNING:,} devices "
                f"(100k parameters each), got {max(sizes):,}")
    if set(programs) & set(LEARNING):
        from fieldlearn.calculus import keep_freed_memory

        keep_freed_memory()  # as the simulator does: model-sized blocks are reused, not zeroed again by the kernel
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
            for n in sizes:
                (b, a), same = compare(names, prog, n, args.repeats, args.budget)
                print(f"| {prog} | {n:,} | {b * 1e3:.3f} | {a * 1e3:.3f} | {a / b:.2f}x | {'yes' if same else 'NO'} |",
                      flush=True)


if __name__ == "__main__":
    main()
