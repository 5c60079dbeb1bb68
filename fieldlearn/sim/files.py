"""Result files: the one atomic write (a reader sees the old file or the whole new one, also after a crash), the one
swap of a complete folder into another's place, and the one conversion of results to plain JSON values."""
from __future__ import annotations

import math
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np


def write_file(path: str | Path, data: bytes | str, sync: bool = True) -> None:
    """Write a whole file (str as UTF-8) and, by default, flush it to disk (into a folder that is swapped in whole,
    such as a staged run folder; `write_atomic` replaces a single file)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with open(path, "wb") as fh:
        fh.write(payload)
        fh.flush()
        if sync:
            os.fsync(fh.fileno())


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Replace `path` with `data` (str as UTF-8): written to a temporary file beside it, flushed to disk, renamed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        write_file(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (a rename into it, a new file) to disk; best effort where the system cannot."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def swap_folder(new: Path, target: Path, aside: Path) -> bool:
    """Put the complete folder `new` in `target`'s place with two renames, `target` (if there is one) to `aside` and
    then `new` to `target`, flushed to disk. A kill between the two leaves `target` missing beside a complete `new`
    (or `aside`), which the caller's recovery moves into place. Returns whether the previous `target` is now at
    `aside`, for the caller to remove."""
    if not new.is_dir():  # checked first, so that a mistake never leaves `target` aside
        raise FileNotFoundError(f"swap_folder: {new} is not a folder")
    moved = target.exists()
    if moved:
        os.rename(target, aside)
    os.rename(new, target)
    fsync_dir(target.parent)
    return moved


def json_plain(x: Any, strict: bool = False) -> Any:
    """`x` with numpy scalars as Python numbers, tuples as lists and keys as strings, exactly; `strict`: non-finite
    floats become None (standard JSON has no NaN or infinity)."""
    if isinstance(x, dict):
        return {str(k): json_plain(v, strict) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_plain(v, strict) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if strict and not math.isfinite(x) else float(x)
    return x
