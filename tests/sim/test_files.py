"""fieldlearn.sim.files: the atomic write, the folder flush, the folder swap and the plain JSON conversion."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from fieldlearn.sim.files import fsync_dir, json_plain, swap_folder, write_atomic, write_file


def test_write_atomic_replaces_and_leaves_no_temporary(tmp_path):
    f = tmp_path / "x.csv"
    write_atomic(f, "one")
    write_atomic(f, b"two")
    assert f.read_text() == "two" and sorted(p.name for p in tmp_path.iterdir()) == ["x.csv"]


def test_write_atomic_flushes_to_disk_before_the_rename_and_cleans_up_on_failure(tmp_path, monkeypatch):
    order = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: order.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: order.append("replace") or real_replace(a, b))
    write_atomic(tmp_path / "a.json", "{}")
    assert order == ["fsync", "replace"]

    def fail(a, b):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(tmp_path / "a.json", "new")
    assert (tmp_path / "a.json").read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_json_plain_is_exact_and_strict_drops_what_json_cannot_hold():
    x = {1: (np.int64(2), np.float32(0.5), np.bool_(True)), "f": [np.float64(0.1), math.inf, math.nan], "s": "x"}
    plain = json_plain(x)
    assert plain == {"1": [2, 0.5, True], "f": [0.1, math.inf, plain["f"][2]], "s": "x"} and math.isnan(plain["f"][2])
    assert [type(v) for v in plain["1"]] == [int, float, bool]
    strict = json_plain(x, strict=True)
    assert strict["f"] == [0.1, None, None]
    assert json.loads(json.dumps(strict, allow_nan=False)) == strict


def test_fsync_dir_flushes_a_folder_and_is_quiet_where_there_is_none(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_ino), real(fd))[1])
    fsync_dir(tmp_path)
    assert synced == [tmp_path.stat().st_ino]
    fsync_dir(tmp_path / "missing")  # no such folder: nothing to flush, no error
    assert synced == [tmp_path.stat().st_ino]


def test_write_file_writes_the_whole_payload_and_flushes_only_when_asked(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    write_file(tmp_path / "a.json", "ü\n")
    write_file(tmp_path / "b.bin", b"\x00\x01", sync=False)
    assert (tmp_path / "a.json").read_bytes() == "ü\n".encode() and (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert len(synced) == 1


def test_swap_folder_puts_the_new_folder_in_place_and_the_previous_one_aside(tmp_path):
    new, target, aside = tmp_path / "new", tmp_path / "out", tmp_path / ".out.old"
    new.mkdir()
    (new / "a.csv").write_text("first")
    assert swap_folder(new, target, aside) is False  # nothing was there: nothing set aside
    assert (target / "a.csv").read_text() == "first" and not new.exists() and not aside.exists()
    new.mkdir()
    (new / "b.csv").write_text("second")
    assert swap_folder(new, target, aside) is True
    assert sorted(p.name for p in target.iterdir()) == ["b.csv"] and (aside / "a.csv").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.old", "out"]
    with pytest.raises(FileNotFoundError, match="missing is not a folder"):  # and the target stays where it is
        swap_folder(tmp_path / "missing", target, tmp_path / ".out.old2")
    assert (target / "b.csv").read_text() == "second" and not (tmp_path / ".out.old2").exists()
