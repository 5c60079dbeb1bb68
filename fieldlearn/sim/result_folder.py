"""A run's result folder, written so that nothing is lost and nothing mixed.

    OUT/                    the files of the last complete run, replaced only whole (one rename)
    .OUT.lock/              beside OUT: locked by the run writing into OUT (`pid` in it); a second run is refused
    .OUT.partial-PID-HEX/   beside OUT: the run being written (all its files: data first, then figures)
    .OUT.ready-PID-HEX/     beside OUT: that run, complete, about to take OUT's place
    .OUT.old-PID-HEX/       beside OUT: the results it replaced, removed right after the swap

A run writes every file into its `.partial-` folder. Complete, the folder is renamed `.ready-`; OUT, if there is
one, is renamed `.old-`; the ready folder is renamed OUT; the old one is removed. Whenever a run is killed, OUT
holds the previous complete results or the new complete ones (a kill between the two renames leaves the new ones
`.ready-`: the next run into OUT moves them into place). The next run into OUT removes what a killed one left,
holding the lock, so what it removes belongs to no running process.

`--force` replaces only a folder of results: the files a run's summary.json lists and the names the simulator
writes (a folder holding anything else is refused, never emptied).
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import threading
import zlib
from pathlib import Path
from typing import Iterator

from .errors import ScenarioError
from .files import fsync_dir, swap_folder

#: The file names a run may write besides its snapshot PNGs (exports.figures.snapshots[].file ends in .png).
RESULT_NAMES = frozenset({"scenario.yaml", "metrics.csv", "devices.csv", "summary.json", "timeseries.png", "run.gif",
                          "run.mp4", "viewer.html"})
STAGES = ("partial", "ready", "old")


class OutputExists(ScenarioError):
    """The chosen result folder already holds files and --force was not given (or cannot be replaced)."""


class OutputBusy(ScenarioError):
    """Another run is writing into the chosen result folder."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run that writes a result folder; the message says what the folder holds now."""


def is_leftover(name: str) -> bool:
    """A temporary file `write_atomic` leaves when killed (`.NAME.tmp-PID-HEX`)."""
    return name.startswith(".") and ".tmp-" in name


def is_result_file(path: Path, listed: frozenset[str] = frozenset()) -> bool:
    """Whether `path` is a file a run wrote: listed in its summary.json, a name the simulator writes, a PNG, or a
    temporary file of an interrupted write."""
    if path.is_symlink() or not path.is_file():
        return False
    name = path.name
    return name in listed or name in RESULT_NAMES or name.endswith(".png") or is_leftover(name)


def _listed(folder: Path) -> frozenset[str]:
    """The files the summary.json of `folder` lists (none when it has no readable summary)."""
    try:
        files = json.loads((folder / "summary.json").read_text(encoding="utf-8")).get("files", [])
        return frozenset(str(f) for f in files if isinstance(f, str))
    except (OSError, ValueError, AttributeError):
        return frozenset()


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Ctrl-C waits until the block is done (the two renames of a swap happen both or neither), then interrupts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


class ResultFolder:
    """The result folder of one run: `open` (lock, clean what killed runs left, check), write into `staging`, then
    `commit` (swap it in whole) and `close` (always: removes an uncommitted staging folder, releases the lock)."""

    def __init__(self, out: str | Path, shown: str | None = None):
        self.shown = shown if shown is not None else str(out)
        self.out = Path(os.path.abspath(out))
        if self.out.is_symlink():  # a link to the result folder: the folder it names is the one replaced
            self.out = self.out.resolve()
        name = self.out.name
        if len(name.encode("utf-8")) > 150:  # room for the suffixes within a file name's 255 bytes
            name = f"{name[:100]}~{zlib.crc32(name.encode('utf-8')):08x}"
        self.prefix = name if name.startswith(".") else f".{name}"
        self.staging = self.out.parent / f"{self.prefix}.partial-{os.getpid()}-{secrets.token_hex(4)}"
        self.had_results = False
        self.committed = False
        self._lock: int | None = None

    def _sibling(self, stage: str) -> Path:
        return self.out.parent / f"{self.prefix}.{stage}-{os.getpid()}-{secrets.token_hex(4)}"

    def _siblings(self, stage: str) -> list[Path]:
        head = f"{self.prefix}.{stage}-"
        try:
            return sorted(p for p in self.out.parent.iterdir() if p.name.startswith(head) and p.is_dir())
        except OSError:
            return []

    # -- opening ----------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, out: str | Path, force: bool, shown: str | None = None) -> "ResultFolder":
        """Lock `out`, finish or remove what killed runs left, check it may receive this run's results (empty,
        absent, or with `force` a folder of results only), and create the staging folder."""
        folder = cls(out, shown)
        try:
            folder._acquire()
            folder._recover()
            folder._check(force)
            folder.staging.mkdir()
        except OSError as exc:
            folder.close()
            raise folder._fail(OutputExists, f"cannot write there ({exc.strerror or exc})") from None
        except BaseException:
            folder.close()
            raise
        return folder

    def _fail(self, cls: type[ScenarioError], message: str) -> ScenarioError:
        return cls(f"--out {self.shown}: {message}")

    def _acquire(self) -> None:
        """Hold an exclusive lock on the folder `.OUT.lock/` beside OUT (a folder, not a file, so that whatever cleans
        a killed run's `.partial-` folders, such as a sweep's, removes it with them); its `pid` says who holds it."""
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._fail(OutputExists, f"cannot create its parent folder ({exc.strerror or exc})") from None
        path = self._lock_path
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        while True:
            try:
                path.mkdir(exist_ok=True)
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # removed by the run that held it, just now: try again
                continue
            except OSError as exc:
                raise self._fail(OutputExists, f"cannot write beside it ({exc.strerror or exc})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                try:
                    who = (path / "pid").read_text(encoding="ascii").strip()
                except (OSError, UnicodeDecodeError):
                    who = ""
                raise self._fail(OutputBusy, "another run is writing into this folder" + (f" (process {who})" if who
                                 else "") + "; wait for it to finish or choose another --out") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:  # else the run that held it removed it meanwhile: lock the new one
                break
            os.close(fd)
        self._lock = fd
        (path / "pid").write_text(str(os.getpid()), encoding="ascii")

    @property
    def _lock_path(self) -> Path:
        return self.out.parent / f"{self.prefix}.lock"

    def _recover(self) -> None:
        """Under the lock: what is beside OUT was left by killed runs. A complete run that did not reach OUT's place
        takes it when OUT is gone; everything else is removed."""
        if not self.out.exists():
            ready = self._siblings("ready") or self._siblings("old")
            if ready:
                os.rename(ready[-1], self.out)
                fsync_dir(self.out.parent)
        for p in self._siblings("partial") + self._siblings("ready"):
            shutil.rmtree(p, ignore_errors=True)
        for p in self._siblings("old"):
            _remove_results(p)
        if self.out.is_dir() and not self.out.is_symlink():
            for p in self.out.iterdir():
                if is_leftover(p.name) and p.is_file():
                    p.unlink(missing_ok=True)

    def _check(self, force: bool) -> None:
        out = self.out
        if out.exists() and not out.is_dir():
            raise self._fail(OutputExists, "exists and is not a folder")
        cwd = Path.cwd().resolve()
        if out.exists() and (out.resolve() == cwd or out.resolve() in cwd.parents):
            raise self._fail(OutputExists, "is the working folder (or holds it); results go into a folder of their own")
        entries = sorted(out.iterdir()) if out.is_dir() else []
        if not entries:
            return
        self.had_results = True
        if not force:
            raise self._fail(OutputExists, "the folder already holds files; results are never overwritten silently. "
                             "Pass --force to replace the previous results there, or choose another --out (without "
                             "--out a fresh folder under results/ is used)")
        listed = _listed(out)
        foreign = [p.name for p in entries if not is_result_file(p, listed)]
        if foreign:
            more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
            raise self._fail(OutputExists, f"--force replaces a folder of results only, and this one also holds "
                             f"{', '.join(foreign[:5])}{more}; choose another --out (or move those away)")

    # -- committing ---------------------------------------------------------------------------------------
    def commit(self) -> None:
        """Swap the complete staging folder into OUT's place (the previous results are removed after)."""
        fsync_dir(self.staging)
        ready = self._sibling("ready")
        os.rename(self.staging, ready)
        self.staging = ready  # what `close` removes if the swap does not happen
        old = self._sibling("old")
        with _sigint_deferred():
            moved = swap_folder(ready, self.out, old)
            self.committed = True
        if moved:
            _remove_results(old)

    def close(self) -> None:
        """Remove the staging folder of a run that did not commit and release the lock (idempotent)."""
        if not self.committed:
            shutil.rmtree(self.staging, ignore_errors=True)
        if self._lock is not None:
            with contextlib.suppress(OSError):  # removed while held: a run that opened it meanwhile re-checks the inode
                (self._lock_path / "pid").unlink(missing_ok=True)
                self._lock_path.rmdir()
            os.close(self._lock)
            self._lock = None

    def interrupted(self) -> RunInterrupted:
        """What Ctrl-C leaves, said truthfully."""
        if self.committed:
            return RunInterrupted(f"interrupted after the results were complete in {self.shown}")
        if self.had_results:
            return RunInterrupted(f"interrupted; nothing was written: the previous results in {self.shown} are intact")
        return RunInterrupted("interrupted; no results were written")


def _remove_results(folder: Path) -> None:
    """Remove a replaced result folder: its result files, then the folder (kept when something else is in it)."""
    listed = _listed(folder)
    for p in folder.iterdir():
        if is_result_file(p, listed):
            p.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        import warnings

        warnings.warn(f"{folder}: the replaced results were removed, but the folder holds other files and is kept",
                      stacklevel=2)
