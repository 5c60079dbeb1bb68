"""keep_freed_memory tells glibc's malloc, jemalloc and tcmalloc to keep freed blocks, each in its own way."""
import ctypes.util
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from fieldlearn.calculus import keep_freed_memory


def run_python(code: str, preload: str | None = None, **env: str) -> list[str]:
    """Run `code` in a fresh interpreter (the allocator setting is process-wide), `preload` preloaded; its lines."""
    environ = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "TCMALLOC_RELEASE_RATE")} | env
    if preload:
        environ["LD_PRELOAD"] = preload
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=environ,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def preloadable(name: str) -> str:
    """The shared library `name` (e.g. jemalloc), or a skip saying how CI installs it."""
    found = ctypes.util.find_library(name)
    if not found:
        pytest.skip(f"lib{name} is not installed (.ci/run installs it with apt-get)")
    return found


def test_thresholds_must_fit_mallopts_c_int():
    for bad in (0, -1, 2**31, 2**33):  # 2**33 would wrap to 0 in a C int: map every block afresh
        with pytest.raises(ValueError, match="threshold"):
            keep_freed_memory(bad)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_glibc_keeps_a_freed_model_sized_block_in_its_heap_instead_of_mapping_it():
    # mallinfo2: `arena` bytes come from the heap (reused when freed), `hblkhd` bytes were mapped for one block
    lines = run_python("""
        import ctypes
        import numpy as np
        from fieldlearn.calculus import keep_freed_memory
        from fieldlearn.calculus.allocator import malloc_name

        class MallInfo2(ctypes.Structure):
            _fields_ = [(k, ctypes.c_size_t) for k in ("arena ordblks smblks hblks hblkhd usmblks fsmblks "
                                                       "uordblks fordblks keepcost").split()]
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        block = np.ones(100 * 2**20, dtype=np.uint8)
        print(malloc_name(), libc.mallinfo2().hblkhd >= 100 * 2**20)
        del block
        print(keep_freed_memory())
        block = np.ones(100 * 2**20, dtype=np.uint8)
        print(libc.mallinfo2().hblkhd >= 100 * 2**20, libc.mallinfo2().arena >= 100 * 2**20)
        del block
        print(libc.mallinfo2().fordblks >= 100 * 2**20)
    """)
    assert lines == ["glibc", "True", "True", "False", "True", "True"]


def test_jemalloc_is_told_never_to_purge_in_every_arena_and_in_arenas_made_later():
    lines = run_python("""
        import threading
        import numpy as np
        from fieldlearn.calculus import keep_freed_memory
        from fieldlearn.calculus.allocator import jemalloc_decay_ms, malloc_name

        settings = ("arenas.dirty_decay_ms", "arenas.muzzy_decay_ms", "arena.0.dirty_decay_ms")
        print(malloc_name(), *(jemalloc_decay_ms(name) for name in settings))
        print(keep_freed_memory(), *(jemalloc_decay_ms(name) for name in settings))
        worker = threading.Thread(target=lambda: np.ones(10**6))  # its first malloc makes an arena of its own
        worker.start()
        worker.join()
        print(jemalloc_decay_ms("arena.1.dirty_decay_ms"), jemalloc_decay_ms("arena.1.muzzy_decay_ms"))
    """, preload=preloadable("jemalloc"))
    assert lines == ["jemalloc", "10000", "0", "10000", "True", "-1", "-1", "-1", "-1", "-1"]


def test_tcmalloc_keeps_freed_pages_only_when_started_with_a_release_rate_of_zero():
    code = ("from fieldlearn.calculus.allocator import keep_freed_memory, malloc_name\n"
            "print(malloc_name(), keep_freed_memory())")
    library = preloadable("tcmalloc_minimal")
    assert run_python(code, preload=library) == ["tcmalloc", "False"]
    assert run_python(code, preload=library, TCMALLOC_RELEASE_RATE="0") == ["tcmalloc", "True"]

