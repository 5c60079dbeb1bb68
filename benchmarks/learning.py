"""Training throughput: model-steps per second of batched training against a per-device torch.optim loop.

    python benchmarks/learning.py [--device cpu|cuda] [--sizes 48,1000,10000] [--steps 4] [--loop-devices 48]
                                  [--repeat 3] [--threads N] [--clock wall|cpu]

Both run in the same process on the same data layout: every device owns 64 samples (two batches of 32)
drawn from a shared pool, trains with Adam (lr 1e-3), and takes `--steps` steps. The per-device loop is
an `nn.Module` plus `torch.optim.Adam` per device, indexing its own samples each step (no DataLoader
overhead, so it is a conservative baseline); above `--loop-devices` devices it is timed on that many
devices and extrapolated (its cost per model-step does not depend on the number of devices). Each
measurement is repeated `--repeat` times, alternating batched and loop, and the best of each is kept
(the machine may be shared; alternating exposes both to the same conditions). `--clock cpu` times with
the process's CPU time instead of the wall clock: with `--threads 1` that is robust to other processes
sharing the cores (it leaves out the time this process waited), with more threads it is not meaningful.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from torch import nn

from fieldlearn.learning.data import Dataset, DeviceData, IndexSets
from fieldlearn.learning.models import ModelField
from fieldlearn.learning.train import train

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
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")

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
