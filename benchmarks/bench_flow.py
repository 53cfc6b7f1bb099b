"""Flow speed benchmark: nkpanel's automated NK analysis against FlowKit and a read floor.

Run from the repository root::

    .venv/bin/python benchmarks/bench_flow.py [--events N] [--repeat R] [--json OUT] [--profile]

or ``make bench``. What it does, all in one run on one machine:

1. writes a **synthetic** tube of ``N`` events (default 1,000,000) with
   :mod:`nkpanel.flow.simulate` into a temporary folder;
2. times :func:`nkpanel.flow.analyze.analyze_file` on it: read, compensate, automated gating,
   counting and QC, no plots;
3. exports the gates nkpanel found as Gating-ML 2.0 (:func:`nkpanel.flow.gatingml.export_gatingml`)
   and times FlowKit applying them to the same file: ``flowkit.Sample`` + ``parse_gating_xml`` +
   ``gate_sample`` + every gate's membership; then checks that every gate holds exactly the same
   events in both (a ``FAIL`` line and exit status 1 when not);
4. times nkpanel applying the same, already found, gates (read + compensate + evaluate + count),
   the like-for-like counterpart of FlowKit's work;
5. times the floor: reading the DATA segment's bytes into a NumPy array (header and TEXT parsed
   only as far as needed);
6. measures peak memory of one analysis in a fresh subprocess (``ru_maxrss`` and the
   ``tracemalloc`` peak, which NumPy reports its buffers to), less a subprocess that only imports
   the same modules, against the size of the float64 event matrix.

Times are the best (and median) of ``R`` runs after one warm-up; the contenders are interleaved
round by round so that a slow spell of the machine hits them all alike. The file is in the page
cache for every contender (it was just written), so the floor is a memory copy, not a disk read.

Goals (from the issue): FlowKit time / nkpanel time ≥ 5 with identical per-event membership;
nkpanel time / floor ≤ 3; peak memory ≤ 4 × the event matrix.

Everything this script generates is synthetic; no patient data are read.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nkpanel.flow.analyze import FlowAnalysis, FlowSettings, analyze_file
from nkpanel.flow.compensation import CompensatedColumns
from nkpanel.flow.gates import GateTree
from nkpanel.flow.gatingml import export_gatingml, gate_ids
from nkpanel.flow.sample import read_fcs
from nkpanel.flow.simulate import SimulationSpec, simulate_tube, write_fcs

BoolArray = NDArray[np.bool_]

#: goals from the issue
GOAL_FLOWKIT_RATIO = 5.0
GOAL_FLOOR_RATIO = 3.0
GOAL_MEMORY_RATIO = 4.0
GOAL_KEYS = (
    f"FlowKit/nkpanel >= {GOAL_FLOWKIT_RATIO:g}",
    f"nkpanel/floor <= {GOAL_FLOOR_RATIO:g}",
    f"peak memory/matrix <= {GOAL_MEMORY_RATIO:g}",
    "identical per-event membership",
)
#: modules the analysis imports (some lazily); the memory baseline imports the same ones
_ANALYSIS_MODULES = ("nkpanel.flow.analyze", "flowio", "flowutils")


# ------------------------------------------------------------------------------------ timing


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of the timed runs of one contender (warm-up excluded)."""

    name: str
    runs_s: tuple[float, ...]

    @property
    def best_s(self) -> float:
        return min(self.runs_s)

    @property
    def median_s(self) -> float:
        return float(statistics.median(self.runs_s))

    def as_json(self) -> dict[str, Any]:
        return {"best": self.best_s, "median": self.median_s, "runs": list(self.runs_s)}


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def time_interleaved(
    contenders: Mapping[str, Callable[[], Any]], repeat: int
) -> tuple[dict[str, Timing], dict[str, Any]]:
    """One warm-up of each contender, then ``repeat`` rounds running each once per round.

    Returns the timings and each contender's output of its last run.
    """
    last: dict[str, Any] = {name: fn() for name, fn in contenders.items()}  # warm-up
    runs: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, fn in contenders.items():
            last[name] = None  # free the previous run's output before timing the next
            seconds, last[name] = _timed(fn)
            runs[name].append(seconds)
    return {name: Timing(name, tuple(r)) for name, r in runs.items()}, last


# ------------------------------------------------------------------------------ contenders


def nkpanel_analysis(path: Path) -> FlowAnalysis:
    """The timed nkpanel run: read, compensate, automated gating, counts and QC."""
    return analyze_file(path, FlowSettings())


def nkpanel_apply_gates(path: Path, tree: GateTree) -> dict[str, int]:
    """nkpanel doing FlowKit's share only: read and compensate (in one pass), evaluate the
    given gates, count."""
    sample = read_fcs(path, compensate=True)
    comp = CompensatedColumns(sample, sample.spillover)
    column = {c.pnn: c.index for c in sample.channels}
    member = tree.evaluate(comp, sample.events, column)
    return {name: int(np.count_nonzero(m)) for name, m in member.items()}


def flowkit_apply_gates(path: Path, xml: Path, ids: Mapping[str, str]) -> dict[str, BoolArray]:
    """FlowKit reading the file, parsing the Gating-ML and gating: gate name → membership."""
    import flowkit

    sample = flowkit.Sample(str(path))
    strategy = flowkit.parse_gating_xml(str(xml))
    results = strategy.gate_sample(sample)
    return {name: np.asarray(results.get_gate_membership(gid)) for name, gid in ids.items()}


def read_data_floor(path: Path) -> NDArray[Any]:
    """The DATA segment as a ``$TOT × $PAR`` array, parsing only the keywords needed for it.

    HEADER offsets per FCS 3.1 (bytes 10–57); $BEGINDATA/$ENDDATA replace them when the HEADER
    writes 0 (files over 99,999,999 bytes). Handles $DATATYPE F, D and I with one $PnB for all
    parameters, which covers the files this benchmark writes; escaped (doubled) delimiters in
    TEXT values are not handled.

    References
    ----------
    Spidlen J et al. Data File Standard for Flow Cytometry, version FCS 3.1.
    Cytometry A 2010;77:97-100.
    """
    with path.open("rb") as fh:
        head = fh.read(58)
        text_start, text_stop = int(head[10:18]), int(head[18:26])
        data_start, data_stop = int(head[26:34]), int(head[34:42])
        fh.seek(text_start)
        text = fh.read(text_stop - text_start + 1).decode("latin-1")
        parts = text[1:].split(text[0])
        kw = {parts[i].upper(): parts[i + 1] for i in range(0, len(parts) - 1, 2)}
        if data_start == 0:
            data_start = int(kw["$BEGINDATA"])
            data_stop = int(kw["$ENDDATA"])
        par, tot = int(kw["$PAR"]), int(kw["$TOT"])
        order = "<" if kw["$BYTEORD"].strip().startswith("1") else ">"
        kind = kw["$DATATYPE"].strip().upper()
        dtype = {"F": "f4", "D": "f8"}.get(kind, f"u{int(kw['$P1B']) // 8}")
        fh.seek(data_start)
        data = np.fromfile(fh, dtype=np.dtype(order + dtype), count=par * tot)
    if data.nbytes != data_stop - data_start + 1:
        raise RuntimeError(
            f"{path}: DATA is {data_stop - data_start + 1} bytes, read {data.nbytes}"
        )
    return data.reshape(tot, par)


# ------------------------------------------------------------------------------ Gating-ML


@dataclass(frozen=True)
class GateCheck:
    """One gate's event count in each tool and how many events they disagree on."""

    gate: str
    nkpanel_events: int
    flowkit_events: int
    mismatched_events: int


def compare_membership(
    ours: Mapping[str, BoolArray], theirs: Mapping[str, BoolArray], names: Sequence[str]
) -> list[GateCheck]:
    out = []
    for name in names:
        a, b = np.asarray(ours[name], dtype=bool), np.asarray(theirs[name], dtype=bool)
        mismatched = int(np.count_nonzero(a != b)) if a.shape == b.shape else max(a.size, b.size)
        out.append(GateCheck(name, int(np.count_nonzero(a)), int(np.count_nonzero(b)), mismatched))
    return out


# ---------------------------------------------------------------------------------- memory


def _worker(mode: str, path: str | None) -> None:
    """Subprocess entry: print peak memory figures of one mode as JSON on the last line."""
    import importlib

    for module in _ANALYSIS_MODULES:
        importlib.import_module(module)
    out: dict[str, Any] = {"mode": mode}
    if mode == "analysis" and path is not None:
        nkpanel_analysis(Path(path))
    elif mode == "tracemalloc" and path is not None:
        import tracemalloc

        tracemalloc.start()
        nkpanel_analysis(Path(path))
        out["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    out["peak_rss_bytes"] = _peak_rss_bytes()
    print(json.dumps(out))


def _peak_rss_bytes() -> int:
    """This process's peak resident set size.

    Linux: ``VmHWM`` of ``/proc/self/status``, the high-water mark of this program's own
    address space. ``ru_maxrss`` is not used there because Linux carries it over ``exec`` from
    the forked parent, so a child of a large parent would report the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss if sys.platform == "darwin" else maxrss * 1024)


def _run_worker(mode: str, path: Path | None) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_worker", mode]
    if path is not None:
        cmd += ["--_path", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory worker {mode!r} failed:\n{done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure_memory(path: Path, matrix_bytes: int) -> dict[str, Any]:
    """Peak memory of one analysis in a fresh process, less an import-only process."""
    baseline = _run_worker("baseline", None)["peak_rss_bytes"]
    peak = _run_worker("analysis", path)["peak_rss_bytes"]
    traced = _run_worker("tracemalloc", path)["tracemalloc_peak_bytes"]
    rss_delta = peak - baseline
    return {
        "baseline_peak_rss_bytes": baseline,
        "analysis_peak_rss_bytes": peak,
        "rss_delta_bytes": rss_delta,
        "tracemalloc_peak_bytes": traced,
        "event_matrix_bytes": matrix_bytes,
        "rss_delta_to_matrix": rss_delta / matrix_bytes,
        "tracemalloc_to_matrix": traced / matrix_bytes,
    }


# --------------------------------------------------------------------------------- profile


@dataclass(frozen=True)
class ProfileRow:
    """One function in a cProfile run: calls, own time and cumulative time (seconds)."""

    function: str
    ncalls: int
    tottime_s: float
    cumtime_s: float


def profile_call(fn: Callable[[], Any], top: int = 15) -> tuple[list[ProfileRow], float]:
    """cProfile of one call: the ``top`` functions by cumulative time, and the total."""
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    stats: Any = pstats.Stats(profiler, stream=io.StringIO())
    rows = []
    for (file, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():
        if (
            Path(file).name == Path(__file__).name
            or func == "<method 'disable' of '_lsprof.Profiler' objects>"
        ):
            continue  # this script's own wrappers and the profiler
        where = func if file == "~" else f"{_short_path(file)}:{line}({func})"
        rows.append(ProfileRow(where, int(ncalls), float(tottime), float(cumtime)))
    rows.sort(key=lambda r: -r.cumtime_s)
    return rows[:top], float(stats.total_tt)


def _short_path(file: str) -> str:
    parts = Path(file).parts
    for anchor in ("nkpanel", "site-packages"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) + (anchor == "site-packages") :])
    return Path(file).name


# ------------------------------------------------------------------------------ environment


def environment() -> dict[str, Any]:
    import flowio
    import flowkit
    import flowutils

    import nkpanel
    from nkpanel._threads import thread_count

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "nkpanel threads": thread_count(),
        "NKPANEL_THREADS": os.environ.get("NKPANEL_THREADS"),
        "numpy": np.__version__,
        "nkpanel": nkpanel.__version__,
        "flowkit": flowkit.__version__,
        "flowio": flowio.__version__,
        "flowutils": flowutils.__version__,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
    }
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        env["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older numpy: no dict mode
        env["numpy_blas"] = "unknown"
    try:
        from threadpoolctl import threadpool_info  # type: ignore[import-untyped]

        env["threadpools"] = [
            {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for p in threadpool_info()
        ]
    except ImportError:
        env["threadpools"] = "threadpoolctl not installed"
    return env


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# ---------------------------------------------------------------------------------- report


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> str:
    """A plain-text table; ``align`` has one ``l`` or ``r`` per column."""
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = (
            c.ljust(w) if a == "l" else c.rjust(w)
            for c, w, a in zip(cells, widths, align, strict=True)
        )
        return "  ".join(padded).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the tube")
    parser.add_argument("--repeat", type=int, default=11, help="timed runs per contender")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--profile", action="store_true", help="cProfile one nkpanel analysis")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed")
    parser.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_path", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._worker is not None:
        _worker(args._worker, args._path)
        return 0
    if args.events < 1000 or args.repeat < 1:
        parser.error("--events must be at least 1000 and --repeat at least 1")

    env = environment()
    print("nkpanel flow benchmark (input is SYNTHETIC: nkpanel.flow.simulate, not patient data)")
    for key, value in env.items():
        print(f"  {key}: {value}")

    with tempfile.TemporaryDirectory(prefix="nkpanel-bench-") as tmp:
        return _run(args, env, Path(tmp))


def _run(args: argparse.Namespace, env: dict[str, Any], tmp: Path) -> int:
    seconds, tube = _timed(
        lambda: simulate_tube(SimulationSpec(n_events=args.events, seed=args.seed))
    )
    path = write_fcs(tube, tmp / f"nk-tube-{args.events}-synthetic.fcs")
    del tube
    size = path.stat().st_size
    print(
        f"\ninput: {path.name} (synthetic, seed {args.seed}), {size / 1e6:.1f} MB, "
        f"simulated in {seconds:.1f} s"
    )

    analysis = nkpanel_analysis(path)
    n_events, n_channels = analysis.sample.events.shape
    matrix_bytes = n_events * n_channels * 8
    if analysis.tree is None:
        raise RuntimeError("automated gating returned no gate tree")
    tree = analysis.tree
    print(f"gates found by nkpanel: {len(tree.names)} ({', '.join(tree.names)})")
    xml = tmp / "nkpanel-gates.xml"
    ids = gate_ids(tree.names)
    try:
        export_gatingml(tree, xml, spillover=analysis.sample.spillover)
        flowkit_apply_gates(path, xml, ids)
    except Exception as exc:  # any failure here means FlowKit cannot do the same work
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"FAIL: FlowKit cannot apply nkpanel's gates: {type(exc).__name__}: {first}")
        return 1
    del analysis

    contenders: dict[str, Callable[[], Any]] = {
        "floor": lambda: read_data_floor(path),
        "nkpanel": lambda: nkpanel_analysis(path),
        "FlowKit": lambda: flowkit_apply_gates(path, xml, ids),
        "nkpanel (given gates)": lambda: nkpanel_apply_gates(path, tree),
        "nkpanel (read only)": lambda: read_fcs(path),
    }
    print(f"timing: 1 warm-up + {args.repeat} interleaved runs each ...", flush=True)
    timings, last = time_interleaved(contenders, args.repeat)

    if last["floor"].shape != (n_events, n_channels):
        raise RuntimeError(f"floor read {last['floor'].shape}, nkpanel {(n_events, n_channels)}")
    checks = compare_membership(last["nkpanel"].membership, last["FlowKit"], tree.names)
    given = last["nkpanel (given gates)"]
    given_ok = all(given[c.gate] == c.nkpanel_events for c in checks)
    del last

    print("measuring peak memory in subprocesses ...", flush=True)
    memory = measure_memory(path, matrix_bytes)

    best = {k: t.best_s for k, t in timings.items()}
    ratios = {
        "flowkit_over_nkpanel": best["FlowKit"] / best["nkpanel"],
        "nkpanel_over_floor": best["nkpanel"] / best["floor"],
        "flowkit_over_nkpanel_given_gates": best["FlowKit"] / best["nkpanel (given gates)"],
        "nkpanel_given_gates_over_floor": best["nkpanel (given gates)"] / best["floor"],
        "nkpanel_read_over_floor": best["nkpanel (read only)"] / best["floor"],
        "peak_memory_over_matrix": memory["rss_delta_to_matrix"],
    }
    goals = dict(
        zip(
            GOAL_KEYS,
            (
                ratios["flowkit_over_nkpanel"] >= GOAL_FLOWKIT_RATIO,
                ratios["nkpanel_over_floor"] <= GOAL_FLOOR_RATIO,
                ratios["peak_memory_over_matrix"] <= GOAL_MEMORY_RATIO,
                all(c.mismatched_events == 0 for c in checks),
            ),
            strict=True,
        )
    )

    _print_membership(checks, n_events, given_ok)
    print(
        f"\nresults ({n_events:,} events × {n_channels} channels; best of {args.repeat} runs, "
        "median in brackets):"
    )
    print(_table(["measure", "value", "note"], _result_rows(timings, ratios, goals, memory), "lrl"))

    profiles: dict[str, list[ProfileRow]] = {}
    if args.profile:
        for name, top in (("nkpanel", 15), ("nkpanel (given gates)", 10)):
            profiles[name], total = profile_call(contenders[name], top)
            _print_profile(name, profiles[name], total)

    if args.json is not None:
        report = {
            "benchmark": "nkpanel flow: automated NK analysis vs FlowKit and a read floor",
            "input": {
                "synthetic": True,
                "generator": "nkpanel.flow.simulate",
                "seed": args.seed,
                "events": n_events,
                "channels": n_channels,
                "file_bytes": size,
            },
            "environment": env,
            "repeat": args.repeat,
            "timings_s": {k: t.as_json() for k, t in timings.items()},
            "ratios": ratios,
            "goals_met": goals,
            "memory": memory,
            "membership": [dataclasses.asdict(c) for c in checks],
            "profile_top_cumulative": {
                name: [dataclasses.asdict(r) for r in rows] for name, rows in profiles.items()
            },
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0 if goals[GOAL_KEYS[3]] and given_ok else 1


def _print_membership(checks: Sequence[GateCheck], n_events: int, given_ok: bool) -> None:
    print(
        "\nper-event membership, nkpanel's automated analysis vs FlowKit on the exported gates "
        f"({n_events:,} events):"
    )
    rows = [
        [c.gate, f"{c.nkpanel_events:,}", f"{c.flowkit_events:,}", f"{c.mismatched_events:,}"]
        for c in checks
    ]
    print(_table(["gate", "nkpanel", "FlowKit", "mismatched"], rows, "lrrr"))
    bad = [c for c in checks if c.mismatched_events]
    if bad:
        differ = ", ".join(
            f"{c.gate} ({c.mismatched_events:,} event{'s' * (c.mismatched_events != 1)})"
            for c in bad
        )
        print(f"FAIL: per-event membership differs in {differ}")
    else:
        print(f"PASS: identical per-event membership in all {len(checks)} gates")
    if not given_ok:
        print("FAIL: nkpanel applying the found gates counts differently from its own analysis")


def _result_rows(
    timings: Mapping[str, Timing],
    ratios: Mapping[str, float],
    goals: Mapping[str, bool],
    memory: Mapping[str, Any],
) -> list[list[str]]:
    mib = 1024 * 1024

    def goal(i: int, bound: str) -> str:
        return f"goal {bound}: {'met' if goals[GOAL_KEYS[i]] else 'NOT met'}"

    return [
        ["nkpanel, automated analysis", _s(timings["nkpanel"]), "read+compensate+gate+count+QC"],
        ["FlowKit, same gates", _s(timings["FlowKit"]), "Sample+parse Gating-ML+gate_sample"],
        [
            "ratio FlowKit / nkpanel",
            f"{ratios['flowkit_over_nkpanel']:.2f}×",
            goal(0, f"≥ {GOAL_FLOWKIT_RATIO:g}×"),
        ],
        ["floor, DATA bytes → NumPy", _s(timings["floor"]), "np.fromfile, warm page cache"],
        [
            "ratio nkpanel / floor",
            f"{ratios['nkpanel_over_floor']:.1f}×",
            goal(1, f"≤ {GOAL_FLOOR_RATIO:g}×"),
        ],
        [
            "peak memory of the analysis",
            f"{memory['rss_delta_bytes'] / mib:.0f} MiB",
            f"peak RSS {memory['analysis_peak_rss_bytes'] / mib:.0f} MiB less import-only "
            f"{memory['baseline_peak_rss_bytes'] / mib:.0f} MiB; "
            f"tracemalloc peak {memory['tracemalloc_peak_bytes'] / mib:.0f} MiB",
        ],
        [
            "float64 event matrix",
            f"{memory['event_matrix_bytes'] / mib:.0f} MiB",
            "events × channels × 8",
        ],
        [
            "ratio peak memory / matrix",
            f"{memory['rss_delta_to_matrix']:.2f}×",
            goal(2, f"≤ {GOAL_MEMORY_RATIO:g}×")
            + f" (tracemalloc {memory['tracemalloc_to_matrix']:.2f}×)",
        ],
        [
            "nkpanel, given gates",
            _s(timings["nkpanel (given gates)"]),
            "FlowKit's share of the work: FlowKit / this "
            f"{ratios['flowkit_over_nkpanel_given_gates']:.2f}×, "
            f"this / floor {ratios['nkpanel_given_gates_over_floor']:.1f}×",
        ],
        [
            "nkpanel, read_fcs only",
            _s(timings["nkpanel (read only)"]),
            f"validated, float64: this / floor {ratios['nkpanel_read_over_floor']:.1f}×",
        ],
    ]


def _print_profile(name: str, profile: Sequence[ProfileRow], total: float) -> None:
    print(
        f"\ncProfile of one {name} run ({total:.2f} s under the profiler), "
        f"top {len(profile)} by cumulative time:"
    )
    rows = [
        [
            r.function,
            str(r.ncalls),
            f"{r.tottime_s:.3f}",
            f"{r.cumtime_s:.3f}",
            f"{100 * r.cumtime_s / total:.0f}%",
        ]
        for r in profile
    ]
    print(_table(["function", "calls", "own s", "cum s", "of run"], rows, "lrrrr"))


def _seconds(x: float) -> str:
    return f"{x * 1000:.1f} ms" if x < 0.1 else f"{x:.3f} s"


def _s(t: Timing) -> str:
    return f"{_seconds(t.best_s)} ({_seconds(t.median_s)})"


if __name__ == "__main__":
    sys.exit(main())
