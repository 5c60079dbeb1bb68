"""Resumable results on disk: one folder per run, complete or absent.

    OUT/
      sweep.json            what the sweep is (scenario, sets, grid, seeds) and each run's status
      runs/ID/              a complete run: the simulator's files, result.json (rows), timing.json (wall time),
                            done.json (config hash)
      runs/.partial-ID-*    a run being written (or left by a killed one): never read, removed on the next start
      errors/ID.txt         the error of a run that failed last time (removed when it succeeds)
    .OUT.replace/           beside OUT: a sweep of another scenario replacing OUT's (asked for with --replace), made
                            whole here first and then swapped into place, so that OUT holds one complete sweep

A run's files are written into a `.partial-` folder, flushed to disk, `done.json` (with the hash of the run's
resolved configuration) written last, and the folder renamed to `runs/ID` in one step. A run counts as complete
only when `runs/ID/done.json` names the same configuration hash as the run about to be made, so a changed scenario,
program or override reruns it, and a half-written run is never mistaken for a complete one. A replacement takes
OUT's place only once its manifest says it is complete: OUT is renamed aside, the replacement renamed to OUT (a
sweep killed between the two renames is finished by the next one), and the old folder removed.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Iterator

from ..sim.files import fsync_dir, swap_folder, write_atomic, write_file
from .grid import FORMAT, SweepError
from .manifest import MARKER, is_complete, read_manifest

RESULT = "result.json"
DONE = "done.json"
TIMING = "timing.json"


def dumps(obj: Any) -> str:
    """JSON with exact floats (repr), NaN and infinities kept (Python's json reads them back)."""
    return json.dumps(obj, indent=None, separators=(",", ":"), allow_nan=True) + "\n"


class Store:
    """The result folder of one sweep."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.runs = self.root / "runs"
        self.errors = self.root / "errors"

    # -- the folder --------------------------------------------------------------------------------------
    def open(self, arg: str = "--out") -> None:
        """Create the folder, refusing one that holds something other than a sweep."""
        r = self.root
        if r.exists() and not r.is_dir():
            raise SweepError(f"{arg} {r}: exists and is not a folder")
        if r.is_dir() and any(r.iterdir()) and not (r / MARKER).is_file() and not self.runs.is_dir():
            raise SweepError(
                f"{arg} {r}: the folder holds files that are not a sweep's results; choose another folder "
                "(a sweep only resumes in a folder it created)"
            )
        self.runs.mkdir(parents=True, exist_ok=True)

    # -- replacing the folder's sweep by another ----------------------------------------------------------
    def replacement(self) -> "Store":
        """The folder beside this one where a sweep of another scenario is made before it replaces this one."""
        here = self.root.resolve()
        return Store(here.parent / f".{here.name}.replace")

    def replace_with(self, staging: "Store") -> None:
        """Swap a complete replacement into this folder's place, then remove the old folder (hold both locks)."""
        here = self.root.resolve()
        old = here.parent / f".{here.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
        swap_folder(staging.root, here, old)  # a kill between its renames: `recover` finishes the swap
        shutil.rmtree(old, ignore_errors=True)

    def recover(self, arg: str = "--out") -> bool:
        """Finish a replacement interrupted between its two renames (this folder gone, the replacement complete)
        and remove old folders a replacement left; True when a replacement was moved into place."""
        staging = self.replacement()
        moved = False
        if not self.root.exists() and staging.root.is_dir():
            with contextlib.ExitStack() as held:
                try:
                    held.enter_context(staging.lock(arg))
                except SweepError:
                    raise SweepError(f"{arg} {self.root}: another sweep is running in this folder (it is replacing "
                                     "the folder's sweep); wait for it or choose another folder") from None
                if not self.root.exists() and is_complete(read_manifest(staging.root)):
                    os.rename(staging.root, self.root)
                    fsync_dir(self.root.parent)
                    moved = True
        if self.root.is_dir():
            here = self.root.resolve()
            prefix = f".{here.name}.old-"
            for old in here.parent.iterdir():
                if old.name.startswith(prefix):
                    shutil.rmtree(old, ignore_errors=True)
        return moved

    @contextlib.contextmanager
    def lock(self, arg: str = "--out") -> Iterator[None]:
        """Hold an exclusive lock on the folder (released when the process ends, even if it is killed)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / ".lock"
        fh = open(path, "a+")
        try:
            try:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except ImportError:  # not POSIX: no lock
                pass
            except OSError:
                fh.seek(0)
                who = fh.read().strip()
                raise SweepError(f"{arg} {self.root}: another sweep is running in this folder"
                                 + (f" (process {who})" if who else "") + "; wait for it or choose another folder") from None
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            yield
        finally:
            fh.close()

    def clean(self) -> int:
        """Remove what interrupted runs left (partial and replaced folders, temporary files); returns how many."""
        n = 0
        if self.runs.is_dir():
            for p in self.runs.iterdir():
                if p.name.startswith((".partial-", ".old-")):
                    shutil.rmtree(p, ignore_errors=True)
                    n += 1
        for folder in (self.root, self.errors):
            if folder.is_dir():
                for p in folder.glob(".*.tmp-*"):
                    p.unlink(missing_ok=True)
        return n

    # -- runs ----------------------------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.runs / run_id

    def status(self, run_id: str, config_hash: str) -> str:
        """`complete` (a result for exactly this configuration), `stale` (a result for another one) or `missing`."""
        done = self.run_dir(run_id) / DONE
        try:
            marker = json.loads(done.read_text())
        except (OSError, ValueError):
            return "missing"
        if not isinstance(marker, dict) or marker.get("format") != FORMAT:
            return "stale"
        if marker.get("config_hash") != config_hash or not (self.run_dir(run_id) / RESULT).is_file():
            return "stale"
        return "complete"

    def begin(self, run_id: str) -> Path:
        """A fresh private folder to write a run into (renamed into place by `commit`)."""
        self.runs.mkdir(parents=True, exist_ok=True)
        tmp = self.runs / f".partial-{run_id}-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
        return tmp

    def commit(self, tmp: Path, run_id: str, config_hash: str, result: dict[str, Any], wall: float | None = None) -> Path:
        """Finish a run written into `tmp`: result.json (and timing.json with the run's wall seconds), then done.json,
        flushed; then one rename makes it visible."""
        for p in tmp.iterdir():  # the simulator's files were written without fsync
            if p.is_file():
                with open(p, "rb") as fh:
                    os.fsync(fh.fileno())
        write_file(tmp / RESULT, dumps(result))
        if wall is not None:  # kept apart from result.json, whose rows must not depend on the machine
            write_file(tmp / TIMING, json.dumps({"wall_s": round(float(wall), 3)}) + "\n")
        files = sorted(p.name for p in tmp.iterdir()) + [DONE]
        write_file(tmp / DONE, json.dumps({"format": FORMAT, "run": run_id, "config_hash": config_hash, "files": files},
                                          indent=2) + "\n")
        fsync_dir(tmp)
        final = self.run_dir(run_id)
        old = self.runs / f".old-{run_id}-{os.getpid()}-{secrets.token_hex(4)}"
        if swap_folder(tmp, final, old):
            shutil.rmtree(old, ignore_errors=True)
        (self.errors / f"{run_id}.txt").unlink(missing_ok=True)
        return final

    def discard(self, tmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)

    def write_payload(self, run_id: str, config_hash: str, result: dict[str, Any], files: dict[str, bytes],
                      wall: float | None = None) -> Path:
        """Commit a run computed elsewhere (a Ray worker): its files arrive as bytes."""
        tmp = self.begin(run_id)
        try:
            for name, data in files.items():
                if "/" in name or "\\" in name or name.startswith(".") or name in (RESULT, DONE, TIMING):
                    raise ValueError(f"unexpected result file name {name!r}")
                write_file(tmp / name, data, sync=False)
            return self.commit(tmp, run_id, config_hash, result, wall)
        except BaseException:
            self.discard(tmp)
            raise

    def load(self, run_id: str) -> dict[str, Any]:
        """The stored rows of a complete run."""
        return json.loads((self.run_dir(run_id) / RESULT).read_text())

    def wall(self, run_id: str) -> float | None:
        """The wall seconds a complete run took to simulate (None when not recorded)."""
        try:
            return float(json.loads((self.run_dir(run_id) / TIMING).read_text())["wall_s"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # -- failures ------------------------------------------------------------------------------------------
    def record_failure(self, run_id: str, text: str) -> Path:
        self.errors.mkdir(parents=True, exist_ok=True)
        path = self.errors / f"{run_id}.txt"
        write_atomic(path, text if text.endswith("\n") else text + "\n")
        return path

    def failure_text(self, run_id: str) -> str | None:
        try:
            return (self.errors / f"{run_id}.txt").read_text()
        except OSError:
            return None
