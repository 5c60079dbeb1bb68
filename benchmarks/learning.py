"""Training throughput: model-steps per second of batched training against a per-device torch.optim loop.

    python benchmarks/learning.py [--device cpu|cuda] [--sizes 48,1000,10000] [--steps 4] [--loop-devices 48]
                                  [--repeat 3] [--threads N] [--clock wall|cpu]
    python benchmarks/learning.py --losses  [--sizes 1000]        # custom losses / frozen layers vs cross-entropy
    python benchmarks/learning.py --memory  [--sizes 1000,10000]  # peak RSS and step time, copy vs inplace=True
    python benchmarks/learning.py --eval                          # CAcc evaluation vs one round's training
    python benchmarks/learning.py --thread-policy                 # OpenMP spin-wait on a busy machine

Both run in the same process on the same data layout: every device owns 64 samples (two batches of 32)
drawn from a shared pool, trains with Adam (lr 1e-3), and takes `--steps` steps. The per-device loop is
an `nn.Module` plus `torch.optim.Adam` per device, indexing its own samples each step (no DataLoader
overhead, so it is a conservative baseline); above `--loop-devices` devices it is timed on that many
devices and extrapolated (its cost per model-step does not depend on the number of devices). Each
measurement is repeated `--repeat` times, alternating batched and loop, and the best of each is kept
(the machine may be shared; alternating exposes both to the same conditions). `--clock cpu` times with
the process's CPU time instead of the wall clock: with `--threads 1` that is robust to other processes
sharing the cores (it leaves out the time this process waited), with more threads it is not meaningful.

`--losses`: the same training with FedProx (`proximal_loss`, an anchor model per device as `extras`), with a
hand-written per-device loss (plain `(p - a) ** 2` FedProx) and with a frozen body (`trainable=` the last
layer), as a ratio to the built-in cross-entropy, alternating, best of `--repeat`.

`--memory`: one subprocess per (devices, mode) trains `--steps` steps with a persistent Adam state
(`fresh_optimiser=False`); it reports the peak RSS of the training call (VmHWM reset just before it) over the
RSS before the models existed, as a multiple of the models plus their optimiser state, and the time per step.
"copy" is the default (inputs untouched, a second copy of models and state); "inplace" is `inplace=True`.
A run that cannot fit in this machine's available memory is reported, not attempted.

`--eval`: a C2FL-like CAcc evaluation (`--eval-devices` devices in `--eval-areas` areas, `--eval-movers` of
them scored on every area's `--eval-samples` samples, the others on their own area; 784-128-10 MLP) through
`accuracy_matrix(needed=...)`, against every device on every area, against one `accuracy_matrix` call per
area over the devices it needs (the context's former loop), and against one round's training (2 epochs,
batch 32, Adam, wd 1e-4 over `--train-samples` fresh samples per device plus `--replay` replayed ones for the
movers; then, as C2FL's post-merge fine-tune, one epoch at batch 16 over the same samples). It also times the
needed pairs in bfloat16 (`eval_precision: bfloat16`) and the CAcc pairs alone (movers on every area) in both, and
counts the pairs whose accuracy bfloat16 changes (the models are untrained and the inputs random: near ties are
commoner than in a trained run).

`--thread-policy`: subprocesses time one Adam step (`train(steps=1)`, 48 devices, digits MLP) 300 times with
0, 1 and 2 CPU-bound processes started alongside, for torch threads 2 and 1, with and without
`OMP_WAIT_POLICY=PASSIVE` (set before torch is imported); median, 90th percentile and max per step (at most
20 s per setting).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn

from fieldlearn.learning.data import Dataset, DeviceData, IndexSets
from fieldlearn.learning.metrics import accuracy_matrix
from fieldlearn.learning.models import ModelField
from fieldlearn.learning.train import OptimiserState, proximal_loss, train
from memory_usage import status_kib

MODELS = {"digits": (64, 32, 10), "mnist": (784, 128, 10)}
SAMPLES_PER_DEVICE = 64
BATCH = 32
POOL = 8192


def mlp(sizes: tuple[int, int, int]) -> nn.Module:
    """The benchmark MLP: in -> hidden -> classes with ReLU."""
    i, h, o = sizes
    return nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, o))


def make_data(sizes: tuple[int, int, int], n: int, device: str, seed: int) -> DeviceData:
    """A shared pool of random samples and 64 random indices into it per device."""
    g = torch.Generator().manual_seed(seed)
    inputs = torch.rand(POOL, sizes[0], generator=g)
    labels = torch.randint(0, sizes[2], (POOL,), generator=g)
    dataset = Dataset(inputs, labels, sizes[2], "random").to(device)
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, POOL, size=n * SAMPLES_PER_DEVICE)
    indptr = np.arange(n + 1, dtype=np.int64) * SAMPLES_PER_DEVICE
    return DeviceData(dataset, IndexSets(indptr, indices))


CLOCK = time.perf_counter


def time_batched(sizes: tuple[int, int, int], n: int, steps: int, device: str) -> float:
    """Model-steps per second of `train` over n stacked models."""
    torch.manual_seed(0)
    models = ModelField.replicate(mlp(sizes).to(device), n)
    data = make_data(sizes, n, device, seed=1)
    g = torch.Generator().manual_seed(2)
    warm = min(n, models.chunk_size)
    train(models[:warm], DeviceData(data.dataset, data.sets.take(np.arange(warm))), steps=1, generator=g)
    _sync(device)
    start = CLOCK()
    result = train(models, data, steps=steps, batch_size=BATCH, optimiser="adam", lr=1e-3, generator=g)
    _sync(device)
    elapsed = CLOCK() - start
    assert torch.isfinite(result.loss).all()
    return n * steps / elapsed


def time_loop(sizes: tuple[int, int, int], n: int, steps: int, device: str) -> float:
    """Model-steps per second of a plain per-device loop (nn.Module + torch.optim.Adam each)."""
    torch.manual_seed(0)
    data = make_data(sizes, n, device, seed=1)
    x_all, y_all = data.dataset.inputs, data.dataset.labels
    modules = [mlp(sizes).to(device) for _ in range(n)]
    optims = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in modules]
    own = [torch.as_tensor(data.sets.row(i), device=device) for i in range(n)]
    loss_fn = nn.CrossEntropyLoss()

    def run(i: int, k: int) -> None:
        model, opt, idx = modules[i], optims[i], own[i]
        done = 0
        while done < k:
            perm = idx[torch.randperm(idx.numel(), device=device)]
            for b in range(0, perm.numel(), BATCH):
                if done == k:
                    break
                batch = perm[b : b + BATCH]
                opt.zero_grad()
                loss_fn(model(x_all[batch]), y_all[batch]).backward()
                opt.step()
                done += 1

    run(0, 2)  # warm-up
    _sync(device)
    start = CLOCK()
    for i in range(n):
        run(i, steps)
    _sync(device)
    return n * steps / (CLOCK() - start)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# --------------------------------------------------------------------------------------------------
# --losses: custom losses and frozen layers against the built-in cross-entropy


def handwritten_fedprox(mu: float):
    """FedProx as a user would first write it for one device: cross-entropy plus mu/2 sum (p - a)^2."""
    def loss(logits, labels, params, extras):
        penalty = sum(((p - extras[k]) ** 2).sum() for k, p in params.items())
        return nn.functional.cross_entropy(logits, labels, reduction="none") + mu / 2 * penalty

    return loss


def time_variant(sizes: tuple[int, int, int], n: int, steps: int, device: str, inplace: bool, **kwargs) -> float:
    """Model-steps per second of one `train` call with the given loss / extras / trainable options."""
    torch.manual_seed(0)
    models = ModelField.replicate(mlp(sizes).to(device), n)
    if kwargs.pop("anchored", False):
        kwargs["extras"] = ModelField.from_factory(lambda: mlp(sizes), n, seed=3, device=device)
    data = make_data(sizes, n, device, seed=1)
    g = torch.Generator().manual_seed(2)
    warm = min(n, models.chunk_size)
    extras = kwargs.get("extras")
    warm_kwargs = dict(kwargs, extras=extras[:warm]) if extras is not None else kwargs
    train(models[:warm], DeviceData(data.dataset, data.sets.take(np.arange(warm))), steps=1, generator=g,
          **warm_kwargs)
    _sync(device)
    start = CLOCK()
    result = train(models, data, steps=steps, batch_size=BATCH, optimiser="adam", lr=1e-3, generator=g,
                   inplace=inplace, **kwargs)
    _sync(device)
    elapsed = CLOCK() - start
    assert torch.isfinite(result.loss).all()
    return n * steps / elapsed


def run_losses(args: argparse.Namespace) -> None:
    """The custom-loss table: model-steps/s of each variant and its cost relative to the built-in loss."""
    variants = {
        "built-in cross-entropy": {},
        "FedProx, proximal_loss(0.01)": dict(loss=proximal_loss(0.01), anchored=True),
        "FedProx, hand-written (p - a) ** 2": dict(loss=handwritten_fedprox(0.01), anchored=True),
        "frozen body (trainable=last layer)": dict(trainable=["2.weight", "2.bias"]),
    }
    print(f"# custom losses, {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, Adam, "
          f"batch {BATCH}, {SAMPLES_PER_DEVICE} samples/device, {args.steps} steps/device, best of {args.repeat}, "
          f"{args.clock} clock, {'inplace=True' if args.inplace else 'inputs kept (default)'}\n")
    print("| model | devices | variant | model-steps/s | cost vs built-in |")
    print("|---|---:|---|---:|---:|")
    for name in args.models.split(","):
        sizes = MODELS[name]
        for n in (int(x) for x in args.sizes.split(",")):
            best = {v: 0.0 for v in variants}
            for _ in range(args.repeat):
                for v, kw in variants.items():
                    best[v] = max(best[v], time_variant(sizes, n, args.steps, args.device, args.inplace, **dict(kw)))
            base = best["built-in cross-entropy"]
            for v, rate in best.items():
                print(f"| {name} MLP {'-'.join(map(str, sizes))} | {n:,} | {v} | {rate:,.0f} | {base / rate:.2f}x |",
                      flush=True)


# --------------------------------------------------------------------------------------------------
# --memory: peak memory of a training call, copying against in place


def memory_child(model: str, n: int, steps: int, inplace: bool) -> dict:
    """In a fresh process: build n models with a persistent Adam state, train `steps` steps, measure."""
    sizes = MODELS[model]
    data = make_data(sizes, n, "cpu", seed=1)
    warm = ModelField.replicate(mlp(sizes), min(64, n))  # a small warm-up call: torch's first allocations
    train(warm, DeviceData(data.dataset, data.sets.take(np.arange(len(warm)))), steps=1, fresh_optimiser=False)
    del warm
    base = status_kib()
    torch.manual_seed(0)
    models = ModelField.replicate(mlp(sizes), n)
    state = OptimiserState.zeros("adam", models)
    held = sum(t.numel() * t.element_size() for t in [*models.params.values(), *models.buffers.values()])
    held += sum(t.numel() * t.element_size() for d in state.slots.values() for t in d.values())
    before = status_kib()
    with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM: the peak from here on is the training call's
        f.write("5")
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    result = train(models, data, steps=steps, batch_size=BATCH, fresh_optimiser=False, state=state,
                   generator=torch.Generator().manual_seed(2), inplace=inplace)
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    peak = status_kib("VmHWM")
    assert torch.isfinite(result.loss).all()
    return dict(held=held, base_kb=base, before_kb=before, peak_kb=peak, wall=wall, cpu=cpu)


def _available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def run_memory(args: argparse.Namespace) -> None:
    """The memory table: one subprocess per (model, devices, mode)."""
    print(f"# training memory, cpu, torch {torch.__version__}, {args.threads or torch.get_num_threads()} threads, "
          f"Adam with a persistent state, {args.steps} steps/device, batch {BATCH}, {SAMPLES_PER_DEVICE} "
          f"samples/device; peak = VmHWM of the training call minus the RSS before the models existed\n")
    print("| model | devices | mode | models + state | peak RSS | peak / (models + state) | s/step (wall) "
          "| s/step (cpu) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        sizes = MODELS[name]
        per_device = 3 * 4 * sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        for n in (int(x) for x in args.sizes.split(",")):
            for mode in ("copy", "inplace"):
                need = per_device * n * (2 if mode == "copy" else 1) + 2**30
                label = f"| {name} MLP {'-'.join(map(str, sizes))} | {n:,} | {mode} |"
                if need > 0.9 * _available_bytes():
                    print(f"{label} {per_device * n / 1e9:.2f} GB | not run: needs about {need / 1e9:.1f} GB, "
                          f"{_available_bytes() / 1e9:.1f} GB available | | | |", flush=True)
                    continue
                cmd = [sys.executable, __file__, "--memory-child", f"{name},{n},{args.steps},{int(mode == 'inplace')}"]
                if args.threads:
                    cmd += ["--threads", str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"{label} failed: {out.stderr.strip().splitlines()[-1:]} | | | | |", flush=True)
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                used = (r["peak_kb"] - r["base_kb"]) * 1024
                print(f"{label} {r['held'] / 1e9:.2f} GB | {r['peak_kb'] / 2**20:.2f} GiB | "
                      f"{used / r['held']:.2f}x | {r['wall'] / args.steps:.3f} | {r['cpu'] / args.steps:.3f} |",
                      flush=True)


# --------------------------------------------------------------------------------------------------
# --eval: the CAcc evaluation against one round's training


def per_area_loop(models: ModelField, dataset: Dataset, areas: IndexSets, needed: np.ndarray) -> np.ndarray:
    """The former evaluation: one accuracy_matrix call per area over the devices that need it."""
    out = np.full(needed.shape, np.nan)
    for r in range(len(areas)):
        who = np.flatnonzero(needed[:, r])
        one = IndexSets.from_lists([areas.row(r)])
        out[who, r] = accuracy_matrix(models, dataset, one, devices=who)[:, 0]
    return out


def run_eval(args: argparse.Namespace) -> None:
    """Evaluation cost of the CAcc setting against one C2FL-like round's training, in one process."""
    n, areas_n, movers_n, per_area = args.eval_devices, args.eval_areas, args.eval_movers, args.eval_samples
    sizes = MODELS["mnist"]
    g = torch.Generator().manual_seed(0)
    dataset = Dataset(torch.rand(POOL, sizes[0], generator=g), torch.randint(0, sizes[2], (POOL,), generator=g),
                      sizes[2], "random")
    rng = np.random.default_rng(0)
    areas = IndexSets.from_lists([rng.choice(POOL, per_area, replace=False) for _ in range(areas_n)])
    area = np.arange(n) % areas_n
    mobile = np.zeros(n, dtype=bool)
    mobile[rng.choice(n, movers_n, replace=False)] = True
    needed = mobile[:, None] | (area[:, None] == np.arange(areas_n))
    movers = mobile[:, None] & np.ones(areas_n, dtype=bool)
    counts = args.train_samples + np.where(mobile, args.replay, 0)
    sets = IndexSets.from_lists([rng.choice(POOL, c, replace=False) for c in counts])
    models = ModelField.from_factory(lambda: mlp(sizes), n, seed=1)

    def one_round() -> None:
        data = DeviceData(dataset, sets)
        trained = train(models, data, epochs=2, batch_size=32, weight_decay=1e-4,
                        generator=torch.Generator().manual_seed(1)).models
        train(trained, data, epochs=1, batch_size=16, weight_decay=1e-4, generator=torch.Generator().manual_seed(2),
              inplace=True)

    timings = {
        "one round's training (2 epochs at batch 32, then the fine-tune epoch at batch 16)": one_round,
        "  of which the 2 epochs at batch 32": lambda: train(models, DeviceData(dataset, sets), epochs=2,
                                                             batch_size=32, weight_decay=1e-4,
                                                             generator=torch.Generator().manual_seed(1)),
        f"evaluation, needed pairs only (accuracy_matrix(needed=...), {int(needed.sum()):,} pairs)":
            lambda: accuracy_matrix(models, dataset, areas, needed=needed),
        f"evaluation, one accuracy_matrix call per area (the former loop, {int(needed.sum()):,} pairs)":
            lambda: per_area_loop(models, dataset, areas, needed),
        f"evaluation, every device on every area ({n * areas_n:,} pairs)": lambda: accuracy_matrix(models, dataset,
                                                                                                  areas),
        f"evaluation, needed pairs in bfloat16 (eval_precision: bfloat16, {int(needed.sum()):,} pairs)":
            lambda: accuracy_matrix(models, dataset, areas, needed=needed, dtype=torch.bfloat16),
        f"evaluation, the CAcc pairs only (movers on every area, {int(movers.sum()):,} pairs)":
            lambda: accuracy_matrix(models, dataset, areas, needed=movers),
        f"evaluation, the CAcc pairs only in bfloat16 ({int(movers.sum()):,} pairs)":
            lambda: accuracy_matrix(models, dataset, areas, needed=movers, dtype=torch.bfloat16),
    }
    same = per_area_loop(models, dataset, areas, needed)
    fast = accuracy_matrix(models, dataset, areas, needed=needed)
    assert np.array_equal(np.isnan(same), np.isnan(fast)) and np.array_equal(same[needed], fast[needed])
    low = accuracy_matrix(models, dataset, areas, needed=needed, dtype=torch.bfloat16)
    flips = np.abs(low - fast)[needed] * per_area  # samples whose answer changed, per pair
    best = {k: float("inf") for k in timings}
    for _ in range(args.repeat):
        for k, fn in timings.items():
            start = CLOCK()
            fn()
            best[k] = min(best[k], CLOCK() - start)
    round_s = best[next(iter(timings))]
    print(f"# CAcc evaluation vs training, cpu, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{n:,} devices, {areas_n} areas of {per_area} evaluation samples, {movers_n} movers on every area, "
          f"MLP 784-128-10; training: {args.train_samples} samples per device plus {args.replay} replayed for movers; "
          f"best of {args.repeat}, {args.clock} clock\n")
    print("| what | seconds | vs one round's training |")
    print("|---|---:|---:|")
    for k, v in best.items():
        print(f"| {k} | {v:.3f} | {v / round_s:.2f}x |")
    print(f"\nbfloat16 against float32: {int((flips > 0).sum()):,} of {flips.size:,} pairs differ, by at most "
          f"{int(flips.max())} of {per_area} samples")


# --------------------------------------------------------------------------------------------------
# --thread-policy: OpenMP spin-waiting on a busy machine


BUSY = "while True:\n    pass"


def thread_child(threads: int, calls: int) -> dict:
    """Time `calls` single Adam steps of 48 digits MLPs (in a process whose environment the parent set)."""
    torch.set_num_threads(threads)
    sizes, n = MODELS["digits"], 48
    models = ModelField.replicate(mlp(sizes), n)
    data = make_data(sizes, n, "cpu", seed=1)
    g = torch.Generator().manual_seed(2)
    for _ in range(20):
        train(models, data, steps=1, generator=g, inplace=True)
    times = []
    deadline = time.perf_counter() + 20.0  # a pathological setting would otherwise take minutes
    while len(times) < calls and time.perf_counter() < deadline:
        start = time.perf_counter()
        train(models, data, steps=1, generator=g, inplace=True)
        times.append(time.perf_counter() - start)
    t = np.array(times) * 1e3
    return dict(median=float(np.median(t)), p90=float(np.percentile(t, 90)), max=float(t.max()), steps=len(t))


def run_thread_policy(args: argparse.Namespace) -> None:
    """The thread-policy table: each setting in a fresh process, next to 0, 1 or 2 CPU-bound processes."""
    backend = torch.__config__.parallel_info().splitlines()[3].strip()
    print(f"# one Adam step (48 digits MLPs, train(steps=1)), {os.cpu_count()} cores, torch {torch.__version__} "
          f"({backend}), "
          f"{args.calls} steps per setting, each setting in a fresh process; load average at start "
          f"{os.getloadavg()[0]:.2f}\n")
    print("| busy processes alongside | torch threads | OMP_WAIT_POLICY | median ms | p90 ms | max ms | steps timed |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for busy in (0, 1, 2):
        spinners = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
        try:
            time.sleep(0.5)
            for threads in (2, 1):
                for policy in (None, "PASSIVE"):
                    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
                    if policy:
                        env["OMP_WAIT_POLICY"] = policy
                    out = subprocess.run([sys.executable, __file__, "--thread-child", f"{threads},{args.calls}"],
                                         capture_output=True, text=True, env=env, check=True)
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    print(f"| {busy} | {threads} | {policy or '(unset)'} | {r['median']:.2f} | {r['p90']:.2f} | "
                          f"{r['max']:.2f} | {r['steps']} |", flush=True)
        finally:
            for proc in spinners:
                proc.kill()
                proc.wait()
    print(f"\nload average (1 min) at end {os.getloadavg()[0]:.2f}")


def main() -> None:
    """Parse options, time both ways for every model and size, print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--sizes", default="48,1000,10000", help="comma-separated device counts")
    parser.add_argument("--models", default="digits,mnist", help="comma-separated: digits (64-32-10), mnist (784-128-10)")
    parser.add_argument("--steps", type=int, default=4, help="training steps per device")
    parser.add_argument("--loop-devices", type=int, default=48, help="devices timed in the per-device loop")
    parser.add_argument("--repeat", type=int, default=3, help="alternating repetitions; the best of each is kept")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"], help="wall clock or process CPU time")
    parser.add_argument("--inplace", action="store_true", help="train with inplace=True (throughput and --losses)")
    parser.add_argument("--losses", action="store_true", help="custom losses and frozen layers vs cross-entropy")
    parser.add_argument("--memory", action="store_true", help="peak RSS and step time, copy vs inplace=True")
    parser.add_argument("--eval", action="store_true", help="CAcc evaluation vs one round's training")
    parser.add_argument("--eval-devices", type=int, default=1024)
    parser.add_argument("--eval-areas", type=int, default=4)
    parser.add_argument("--eval-movers", type=int, default=256)
    parser.add_argument("--eval-samples", type=int, default=300, help="evaluation samples per area")
    parser.add_argument("--train-samples", type=int, default=20, help="fresh training samples per device (--eval)")
    parser.add_argument("--replay", type=int, default=300, help="replayed samples per mover (--eval)")
    parser.add_argument("--thread-policy", action="store_true", help="OpenMP spin-wait on a busy machine")
    parser.add_argument("--calls", type=int, default=300, help="steps timed per setting (--thread-policy)")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--thread-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.thread_child:
        threads, calls = (int(x) for x in args.thread_child.split(","))
        print(json.dumps(thread_child(threads, calls)))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        model, n, steps, inplace = args.memory_child.split(",")
        print(json.dumps(memory_child(model, int(n), int(steps), bool(int(inplace)))))
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    for flag, run in (("losses", run_losses), ("memory", run_memory), ("eval", run_eval),
                      ("thread_policy", run_thread_policy)):
        if getattr(args, flag):
            run(args)
            return

    load_start = os.getloadavg()[0]
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{platform.processor() or platform.machine()}"
    print(f"# training throughput, {args.device} ({where}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, Adam, batch {BATCH}, {SAMPLES_PER_DEVICE} samples/device, "
          f"{args.steps} steps/device, best of {args.repeat}, {args.clock} clock\n")
    print("| model | devices | batched model-steps/s | loop model-steps/s | loop timed on | speed-up |")
    print("|---|---:|---:|---:|---|---:|")
    for name in args.models.split(","):
        sizes = MODELS[name]
        label = f"{name} MLP {'-'.join(map(str, sizes))}"
        for n in (int(s) for s in args.sizes.split(",")):
            timed = min(n, args.loop_devices)
            batched = loop = 0.0
            for _ in range(args.repeat):
                batched = max(batched, time_batched(sizes, n, args.steps, args.device))
                loop = max(loop, time_loop(sizes, timed, args.steps, args.device))
            how = "all devices" if timed == n else f"{timed} devices, extrapolated"
            print(f"| {label} | {n:,} | {batched:,.0f} | {loop:,.0f} | {how} | {batched / loop:.1f}x |", flush=True)
    print(f"\nload average (1 min) at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f} "
          f"(above 0 means other processes shared the CPU)")


if __name__ == "__main__":
    main()
