"""The sweep's outputs: the tidy table (one row per run and recorded round), the summary (mean and spread per variant
at chosen rounds), the comparison figure and the console summary. No pandas: a small `Table` of dict rows."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from .grid import Plan, Run, short_names, value_text

RUN_COLUMNS = ("run", "seed", "time", "round")


# ------------------------------------------------------------------------------------------------------ table
def cell(x: Any) -> str:
    """One CSV cell: integers as integers, floats as their shortest exact repr, booleans as true/false, None empty,
    lists and mappings as flow YAML."""
    if x is None:
        return ""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return repr(x)
    if isinstance(x, str):
        return x
    return value_text(x)


def _parse_cell(text: str) -> Any:
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    if text[0] in "[{":  # lists and mappings were written as flow YAML
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            return text
    return text


class Table:
    """Rows (dicts) with a fixed column order; `to_csv()` writes it, `column(name)` reads one column, `where(k=v)`
    filters. A sweep returns a `SweepTable`: its tidy table with the other tables and what the sweep did."""

    def __init__(self, columns: Sequence[str], rows: Iterable[Mapping[str, Any]] = ()):
        self.columns = list(columns)
        self.rows: list[dict[str, Any]] = [dict(r) for r in rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Table):
            return NotImplemented
        return self.to_csv() == other.to_csv()

    def __repr__(self) -> str:
        head = self.to_csv().splitlines()[:6]
        more = f"\n... ({len(self.rows)} rows)" if len(self.rows) > 5 else ""
        return f"Table({len(self.rows)} rows x {len(self.columns)} columns)\n" + "\n".join(head) + more

    def column(self, name: str) -> list[Any]:
        if name not in self.columns:
            raise KeyError(f"no column {name!r} (columns: {', '.join(self.columns)})")
        return [r.get(name) for r in self.rows]

    def where(self, **equal: Any) -> "Table":
        """The rows whose columns equal the given values (`where(seed=0)`; a grid key with dots:
        `where(**{'program.params.method': 'fl'})`)."""
        return Table(self.columns, [r for r in self.rows if all(r.get(k) == v for k, v in equal.items())])

    def to_csv(self, path: str | Path | None = None) -> str:
        """The CSV text (header, then one line per row); also written to `path` when given."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        for r in self.rows:
            w.writerow([cell(r.get(c)) for c in self.columns])
        text = buf.getvalue()
        if path is not None:
            from ..sim.files import write_atomic

            write_atomic(Path(path), text)
        return text

    @classmethod
    def from_csv(cls, path_or_text: str | Path) -> "Table":
        """Read a table written by `to_csv` (numbers become numbers, empty cells None)."""
        text = Path(path_or_text).read_text() if isinstance(path_or_text, Path) or "\n" not in str(path_or_text) else str(path_or_text)
        reader = csv.reader(io.StringIO(text))
        header = next(reader, [])
        return cls(header, [dict(zip(header, (_parse_cell(c) for c in row))) for row in reader])


class SweepTable(Table):
    """What a sweep returns: its tidy table (one row per run and recorded round), with `summary` (mean and spread
    per variant at `rounds_at`), `runs` (one row per run: status, wall seconds, error), `failures` (one dict per
    failed run), `out` (the result folder, None for a temporary one) and `files` (name -> path of the files
    written there); `metric` (of the figure and printed summary), `plan`, `ran` and `reused` (runs made by this
    call / found complete) and `wall_seconds` (of the runs made)."""

    def __init__(self, table: Table, *, summary: Table, runs: Table, failures: list[dict[str, Any]],
                 out: Path | None, file_names: Sequence[str], metric: str | None, rounds_at: list[Any], plan: Plan,
                 ran: int, reused: int, wall_seconds: float):
        super().__init__(table.columns, table.rows)
        self.summary = summary
        self.runs = runs
        self.failures = failures
        self.out = out
        self.file_names = list(file_names)
        self.metric = metric
        self.rounds_at = rounds_at
        self.plan = plan
        self.ran = ran
        self.reused = reused
        self.wall_seconds = wall_seconds

    @property
    def files(self) -> dict[str, Path]:
        """Each file the sweep wrote into `out` (none for a temporary folder, removed afterwards)."""
        return {} if self.out is None else {name: self.out / name for name in self.file_names}

    def complete_runs(self) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """(row of `runs`, that run's tidy rows) for each complete run, in the order of `runs`: a run's table at hand."""
        rows: dict[Any, list[dict[str, Any]]] = {}
        for row in self.rows:
            rows.setdefault(row.get("run"), []).append(row)
        return [(info, rows[info["run"]]) for info in self.runs.rows
                if info.get("status") == "complete" and rows.get(info.get("run"))]

    def moved_to(self, out: Path | None) -> "SweepTable":
        """The same result, its files now in `out` (a replacement swapped into place, or a removed folder)."""
        return SweepTable(self, summary=self.summary, runs=self.runs, failures=self.failures, out=out,
                          file_names=self.file_names, metric=self.metric, rounds_at=self.rounds_at, plan=self.plan,
                          ran=self.ran, reused=self.reused, wall_seconds=self.wall_seconds)


# ------------------------------------------------------------------------------------------------- tidy table
def _round_of(t: float, period: float) -> int | float:
    r = t / period
    k = round(r)
    return int(k) if abs(r - k) < 1e-9 * max(1.0, abs(r)) else r


def run_rows(run: Run, keys: Sequence[str], result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A run's recorded rows, then its final state (at the end time), each with the run's parameters and seed."""
    cols = result["columns"]
    period = float(result["period"])
    base = _run_row(run)
    out = []
    records = [dict(zip(cols, row)) for row in result["rows"]]
    final = dict(result.get("final") or {})
    if final and (not records or final.get("time") != records[-1].get("time")):
        records.append(final)
    for rec in records:
        row = dict(base)
        t = rec.get("time")
        row["time"] = t
        row["round"] = _round_of(float(t), period) if t is not None else None
        for c, v in rec.items():
            if c != "time":
                row[c] = v
        out.append(row)
    return out


def tidy_table(plan: Plan, results: Mapping[str, Mapping[str, Any]]) -> Table:
    """One row per run (in expansion order) and recorded time: run, the grid keys, seed, time, round, metrics."""
    keys = plan.keys
    metrics: list[str] = []
    rows: list[dict[str, Any]] = []
    for run in plan.runs:
        res = results.get(run.id)
        if res is None:
            continue
        for c in res["columns"]:
            if c != "time" and c not in metrics:
                metrics.append(c)
        for c in (res.get("final") or {}):
            if c != "time" and c not in metrics:
                metrics.append(c)
        rows.extend(run_rows(run, keys, res))
    cols = ["run"] + keys + ["seed", "time", "round"] + metrics
    return Table(cols, rows)


def metric_columns(table: Table, keys: Sequence[str]) -> list[str]:
    fixed = set(RUN_COLUMNS) | set(keys)
    return [c for c in table.columns if c not in fixed]


# --------------------------------------------------------------------------------------------------- summary
def _finite(values: Iterable[Any]) -> list[float]:
    """The finite numbers among `values` as floats (booleans count 0/1; None, NaN, inf and text are skipped)."""
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def stats(values: Sequence[float]) -> dict[str, Any]:
    """n, mean, std (sample, n - 1; None below 2 values), min, max of finite values."""
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"n": n, "mean": mean, "std": std, "min": min(values), "max": max(values)}


def _row_at(rows: list[dict[str, Any]], r: float | str) -> dict[str, Any] | None:
    """The row at round `r` (the last row for 'end'); a round between two records takes the last one before it."""
    if not rows:
        return None
    if r == "end":
        return rows[-1]
    last = rows[-1].get("round")
    if last is not None and r > last + 1e-9 * max(1.0, abs(r)):
        return None  # after this run's end (a shorter variant)
    best = None
    for row in rows:
        rr = row.get("round")
        if rr is None:
            continue
        if abs(rr - r) <= 1e-9 * max(1.0, abs(r)):
            return row
        if rr < r:
            best = row
    return best


def summarise(plan: Plan, table: Table, rounds_at: Sequence[float | str], failed: Mapping[str, Any]) -> Table:
    """Per variant, chosen round and metric: runs complete/failed, n finite values, mean, std, min, max."""
    keys = plan.keys
    metrics = metric_columns(table, keys)
    by_run: dict[str, list[dict[str, Any]]] = {}
    for row in table.rows:
        by_run.setdefault(row["run"], []).append(row)
    out: list[dict[str, Any]] = []
    for v in plan.variants:
        runs = [r for r in plan.runs if r.variant.index == v.index]
        complete = [r for r in runs if r.id in by_run]
        n_failed = sum(1 for r in runs if r.id in failed)
        for at in rounds_at:
            picked = [_row_at(by_run[r.id], at) for r in complete]
            for m in metrics or [""]:
                base: dict[str, Any] = dict(v.params)
                base.update({"round": at, "metric": m, "runs": len(complete), "failed": n_failed})
                base.update(stats(_finite(p.get(m) for p in picked if p is not None)) if m else stats([]))
                out.append(base)
    return Table(keys + ["round", "metric", "runs", "failed", "n", "mean", "std", "min", "max"], out)


def _run_row(run: Run, **extra: Any) -> dict[str, Any]:
    """A run's identity columns (run, its parameters, seed), then `extra`."""
    row: dict[str, Any] = {"run": run.id}
    row.update(run.params)
    row["seed"] = run.seed
    row.update(extra)
    return row


def runs_table(plan: Plan, status: Mapping[str, str], walls: Mapping[str, float | None],
               failed: Mapping[str, Any]) -> Table:
    """One row per run: its parameters, seed, status (complete, failed, missing), wall seconds and error, if any."""
    rows = [_run_row(run, status=status.get(run.id, "missing"), wall_s=walls.get(run.id), error=failed.get(run.id))
            for run in plan.runs]
    return Table(["run"] + plan.keys + ["seed", "status", "wall_s", "error"], rows)


def failures_table(plan: Plan, failed: Mapping[str, Any]) -> Table:
    """One row per failed run: its parameters, seed and error."""
    rows = [_run_row(run, error=failed[run.id]) for run in plan.runs if run.id in failed]
    return Table(["run"] + plan.keys + ["seed", "error"], rows)


# ---------------------------------------------------------------------------------------------------- figure
def comparison_png(plan: Plan, table: Table, metric: str, title: str | None = None) -> bytes:
    """`metric` over rounds: per variant the mean over seeds (a line) and mean +- one standard deviation (a band)."""
    from matplotlib.figure import Figure

    from ..sim.figures import png_bytes

    short = short_names(plan.keys)
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    by_variant: dict[int, dict[float, list[float]]] = {}
    run_variant = {r.id: r.variant.index for r in plan.runs}
    for row in table.rows:
        vi = run_variant.get(row["run"])
        x = row.get("round")
        y = row.get(metric)
        if vi is None or x is None:
            continue
        vals = _finite([y])
        by_variant.setdefault(vi, {}).setdefault(float(x), [])
        if vals:
            by_variant[vi][float(x)].append(vals[0])
    colors = [f"C{i % 10}" for i in range(len(plan.variants))]
    for k, v in enumerate(plan.variants):
        series = by_variant.get(v.index)
        if not series:
            continue
        xs = sorted(series)
        st = [stats(series[x]) for x in xs]
        pts = [(x, s) for x, s in zip(xs, st) if s["mean"] is not None]
        if not pts:
            continue
        x = [p[0] for p in pts]
        mean = [p[1]["mean"] for p in pts]
        lo = [p[1]["mean"] - (p[1]["std"] or 0.0) for p in pts]
        hi = [p[1]["mean"] + (p[1]["std"] or 0.0) for p in pts]
        n = max(p[1]["n"] for p in pts)
        label = (v.label(short) if plan.keys else plan.source.name) + f" (n={n})"
        ax.plot(x, mean, color=colors[k], linewidth=1.6, label=label, marker="." if len(x) < 30 else None)
        ax.fill_between(x, lo, hi, color=colors[k], alpha=0.18, linewidth=0)
    ax.set_xlabel("round")
    ax.set_ylabel(metric)
    ax.set_title(title or f"{plan.source.name}: {metric} (mean ± 1 std over seeds)", fontsize=10)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return png_bytes(fig)


# --------------------------------------------------------------------------------------------------- console
def _num(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def summary_text(plan: Plan, summary: Table, metric: str, rounds_at: Sequence[float | str]) -> str:
    """A one-screen table: one line per variant, `mean ± std` of `metric` at each chosen round."""
    short = short_names(plan.keys)
    head = ["variant", "runs"] + [f"round {r}" for r in rounds_at]
    lines = [head]
    rows = [r for r in summary.rows if r["metric"] == metric]
    for v in plan.variants:
        mine = [r for r in rows if all(r.get(k) == val for k, val in v.params)]
        if not mine:
            continue
        done, failed = mine[0]["runs"], mine[0]["failed"]
        line = [v.label(short) if plan.keys else plan.source.name, f"{done}" + (f" ({failed} failed)" if failed else "")]
        for at in rounds_at:
            got = next((r for r in mine if r["round"] == at), None)
            if got is None or got["mean"] is None:
                line.append("-")
            else:
                line.append(_num(got["mean"]) + (f" ± {_num(got['std'])}" if got["std"] is not None else ""))
        lines.append(line)
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines)

