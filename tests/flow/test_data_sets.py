"""Files that hold several data sets ($NEXTDATA): the analysis, a lab template and the command
line read the data set asked for, or the default one, and say which.

Beckman Coulter's list-mode (LMD) files hold an FCS 2.0 data set followed by an FCS 3.0 data
set of the same events (FlowKit issue #104); the files here are built the same way from a
small synthetic FCS 2.0 data set and a second data set that is a whole FCS file as written by
the simulator or by a real instrument."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nkpanel.flow.analyze import FlowSettings, analyze_file
from nkpanel.flow.simulate import SimulationSpec, simulate_tube, write_fcs
from tests.flow.test_sample import good


def _fcs2_then(second: bytes) -> bytes:
    """An FCS 2.0 data set whose $NEXTDATA (fixed width, so the TEXT keeps its length) points
    to ``second``, appended after it."""
    first = good(version="2.0", keywords={"$NEXTDATA": "0" * 10})
    first = good(version="2.0", keywords={"$NEXTDATA": f"{len(first):010d}"})
    return first + second


def test_automated_analysis_reads_the_fcs3_data_set_of_a_pair(tmp_path: Path) -> None:
    alone = write_fcs(simulate_tube(SimulationSpec(n_events=20_000, seed=31)), tmp_path / "t.fcs")
    pair = tmp_path / "tube.LMD"
    pair.write_bytes(_fcs2_then(alone.read_bytes()))
    want = analyze_file(alone).result
    got = analyze_file(pair).result
    assert got.nk_percent_of_lymphocytes == want.nk_percent_of_lymphocytes
    assert got.n_events == want.n_events == 20_000
    # asking for the FCS 2.0 data set reads the 5 events there (and fails, saying so)
    from nkpanel.errors import NkPanelError

    with pytest.raises(NkPanelError):
        analyze_file(pair, FlowSettings(dataset=1))


@pytest.mark.shared_data
def test_a_flowjo_template_gates_the_data_set_read(shared_data: Path, tmp_path: Path) -> None:
    """The expert's FlowJo workspace applied to the real file inside a pair gives the expert's
    NK count (312), as it does to the file alone."""
    d = shared_data / "flowsom-68983"
    pair = tmp_path / "68983.fcs"  # the workspace's sample name
    pair.write_bytes(_fcs2_then((d / "68983.fcs").read_bytes()))
    analysis = analyze_file(pair, FlowSettings(template=d / "gating.wsp"))
    nk = [k for k in analysis.membership if k.endswith("NK cells")]
    assert nk and int(np.count_nonzero(analysis.membership[nk[0]])) == 312
    assert any("data set 2 read" in n for n in analysis.sample.notes)


def test_command_line_dataset_option(tmp_path: Path) -> None:
    alone = write_fcs(simulate_tube(SimulationSpec(n_events=20_000, seed=32)), tmp_path / "t.fcs")
    pair = tmp_path / "pair.fcs"
    pair.write_bytes(_fcs2_then(alone.read_bytes()))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nkpanel", "flow", "analyze", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
            timeout=300,
            check=False,
        )

    ok = run(str(pair), "--dataset", "2", "--no-plots", "--out", str(tmp_path / "ok"))
    assert ok.returncode == 0, ok.stderr
    bad = run(str(pair), "--dataset", "3", "--no-plots", "--out", str(tmp_path / "bad"))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert f"{pair}: data set 3 asked for, but the file holds 2" in bad.stderr


@pytest.mark.shared_data
def test_a_template_gates_the_data_set_the_sample_was_read_from(
    shared_data: Path, tmp_path: Path
) -> None:
    """analyze_sample on a sample read from data set 2 gates data set 2 (the template reads
    the file itself, and must read the same data set)."""
    from nkpanel.flow.analyze import analyze_sample
    from nkpanel.flow.sample import read_fcs

    d = shared_data / "flowsom-68983"
    pair = tmp_path / "68983.fcs"
    pair.write_bytes(_fcs2_then((d / "68983.fcs").read_bytes()))
    sample = read_fcs(pair, dataset=2)
    assert sample.dataset == 2
    a = analyze_sample(sample, FlowSettings(template=d / "gating.wsp", dataset=1))
    nk = [k for k in a.membership if k.endswith("NK cells")]
    assert int(np.count_nonzero(a.membership[nk[0]])) == 312


def test_a_case_manifest_names_the_data_set(tmp_path: Path) -> None:
    from nkpanel.case import load_case
    from nkpanel.pipeline import run_case

    alone = write_fcs(simulate_tube(SimulationSpec(n_events=20_000, seed=33)), tmp_path / "t.fcs")
    (tmp_path / "pair.fcs").write_bytes(_fcs2_then(alone.read_bytes()))
    manifest = tmp_path / "case.toml"
    manifest.write_text(
        '[case]\nid = "E"\npatient_id = "P"\nsynthetic = true\n\n'
        '[[blood_draws]]\nfcs = ["pair.fcs"]\ndataset = 1\n'
    )
    outcome = run_case(load_case(manifest), tmp_path / "out", reports=False)
    draw = outcome.summary["blood_draws"][0]
    # data set 1 is the 5-event FCS 2.0 set: read as asked, and failing for too few events
    assert not draw["flow"] and "pair.fcs" in draw["failures"][0]["source"]
    assert "too few events (5)" in draw["failures"][0]["reason"]


@pytest.mark.shared_data
def test_template_figures_drawn_without_flowkits_sample_read_the_same_data_set(
    shared_data: Path, tmp_path: Path
) -> None:
    """plot_template_gates, when not handed the FlowKit sample the template gated, reads the
    file again: the data set it reads is the one asked for (it read the first, the FCS 2.0
    data set of 5 events, whose event count does not match the membership)."""
    from nkpanel.flow.template_plots import plot_template_gates

    d = shared_data / "flowsom-68983"
    pair = tmp_path / "68983.fcs"
    pair.write_bytes(_fcs2_then((d / "68983.fcs").read_bytes()))
    a = analyze_file(pair, FlowSettings(template=d / "gating.wsp", dataset=2))
    files, _ = plot_template_gates(
        d / "gating.wsp", pair, a.membership, a.parents, tmp_path / "plots", dataset=2
    )
    assert files and all(f.stat().st_size > 0 for f in files)
