"""The process's memory allocator: keep freed model-sized blocks for reuse instead of handing them back each round."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from typing import Any

#: The largest block glibc's mallopt can be told to keep: its value is a C int.
MALLOPT_MAX = 2**31 - 1


def keep_freed_memory(threshold: int = MALLOPT_MAX) -> bool:
    """Ask the C allocator to keep freed blocks for reuse instead of returning them to the system; returns whether it
    took effect (False where the allocator is neither glibc's malloc nor jemalloc, or is tcmalloc started without
    `TCMALLOC_RELEASE_RATE=0`).

    Every round allocates and frees arrays the size of all devices' values (models: hundreds of MB, 1.6 GB for 4,096
    models of 101k parameters); by default each such block is mapped afresh and the kernel zeroes its pages, which can
    cost more system time than the arithmetic. glibc's malloc is told to keep blocks below `threshold` bytes (at most
    2 GiB - 1, mallopt's C int); its freed blocks fragment, so the peak RSS can be well above what is alive. jemalloc
    (loaded with `LD_PRELOAD=libjemalloc.so.2`) is told never to purge freed pages, which it reuses with little
    fragmentation; tcmalloc can only be told so before it starts (`TCMALLOC_RELEASE_RATE=0`). `threshold` is checked
    but has no meaning for either. A process-wide setting, so runners (simulator, benchmarks) call it, not the
    calculus."""
    if not 0 < int(threshold) <= MALLOPT_MAX:
        raise ValueError(f"keep_freed_memory: threshold must be in 1..{MALLOPT_MAX} bytes, got {threshold}")
    name = malloc_name()
    if name == "jemalloc":
        return _jemalloc_never_purges()
    if name == "tcmalloc":  # its C interface cannot set the release rate; the variable is read when it starts
        return os.environ.get("TCMALLOC_RELEASE_RATE", "").strip() in ("0", "0.0")
    if name != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, int(threshold))) and bool(libc.mallopt(m_trim_threshold, MALLOPT_MAX))


def malloc_name() -> str:
    """Which allocator serves this process's malloc: `jemalloc`, `tcmalloc`, `glibc` or `other`."""
    process = ctypes.CDLL(None)
    if hasattr(process, "mallctl"):
        return "jemalloc"
    if hasattr(process, "MallocExtension_GetNumericProperty"):
        return "tcmalloc"
    return "glibc" if platform.libc_ver()[0] == "glibc" else "other"


def jemalloc_decay_ms(name: str) -> int:
    """The value of one of jemalloc's `*_decay_ms` settings (milliseconds before freed pages are purged; -1: never)."""
    value = ctypes.c_ssize_t(0)
    if _mallctl(name, read=value) != 0:
        raise OSError(f"jemalloc has no setting {name!r}")
    return value.value


def _jemalloc_never_purges() -> bool:
    """Set the decay times of every jemalloc arena, and of arenas made later, to never (-1)."""
    never, count = ctypes.c_ssize_t(-1), ctypes.c_uint(0)
    if _mallctl("arenas.narenas", read=count) != 0:
        return False
    ok = True
    for kind in ("dirty", "muzzy"):
        ok = ok and _mallctl(f"arenas.{kind}_decay_ms", write=never) == 0
        taken = [_mallctl(f"arena.{i}.{kind}_decay_ms", write=never) == 0 for i in range(count.value)]
        ok = ok and taken[0]  # arena 0 always exists; arenas not made yet refuse and take arenas.* when made
    return ok


def _mallctl(name: str, read: Any = None, write: Any = None) -> int:
    """jemalloc's `mallctl(name, oldp, oldlenp, newp, newlen)`: read a setting into `read`, or set it to `write`."""
    mallctl = ctypes.CDLL(None).mallctl
    size = ctypes.c_size_t(ctypes.sizeof(read)) if read is not None else None
    return mallctl(name.encode(), None if read is None else ctypes.byref(read),
                   None if size is None else ctypes.byref(size),
                   None if write is None else ctypes.byref(write), 0 if write is None else ctypes.sizeof(write))
