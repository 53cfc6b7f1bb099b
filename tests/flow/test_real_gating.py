"""Automated NK gating on real files the project was not built on (audit 31), fetched from PyPI
by :mod:`tests.instrument_files`. There are no expert gates for them: truth is the biology's
plausible range, and the same events before a normalisation moved them."""

from __future__ import annotations

from pathlib import Path

import pytest

from nkpanel.flow.analyze import analyze_file


def test_a_cytek_aurora_pbmc_is_gated_where_its_populations_are(aurora_pbmc: Path) -> None:
    """Real human PBMC, unmixed (CD3, CD56, CD19; no CD16, no CD45), with $PnR 262,144 though
    its data reach 4,194,304. Before audit 31's mends: NK 0.5% of lymphocytes and NK-like T
    96% (the CD3 cut in the lowest valley split the NK cells; every event "saturated" and no
    singlet gate). NK cells are 5-20% of PBMC lymphocytes and NK-like T cells a few percent
    (ARUP 2013805: 0.9-14.4%); here about 5% of each, as a person gating it finds (audit 31:
    5.5% and 5.8% with the file's range corrected by hand, which the ranges taken from the
    data now give as well)."""
    r = analyze_file(aurora_pbmc).result
    nk, nkt = r.nk_percent_of_lymphocytes, r.nk_like_t_percent_of_lymphocytes
    assert nk is not None and 4.0 <= nk <= 7.0
    assert nkt is not None and 2.0 <= nkt <= 8.0
    assert r.reportable, r.not_reportable_reasons
    assert any("above the file's range" in n for n in r.file_notes)


@pytest.mark.parametrize("patient", ["PTLG021", "PTLG028", "PTLG034"])
def test_cytonorm_normalised_cytof_keeps_its_nk_cells(
    cytonorm_resources: Path, patient: str
) -> None:
    """CytoNorm moves each channel's zero counts to a small constant; nkpanel took that pile for
    the negative peak: NK 0.3% and 10.9% for 15.5% and 15.8%, and one file failed (audit 31).
    A normalisation shifts intensities a little: NK % stays within 2.5 points of the same
    events before it (1,000-event files, about 50 NK events: counting alone spreads ±2)."""
    before = analyze_file(cytonorm_resources / f"Gates_{patient}_Unstim_Control_2.fcs").result
    after = analyze_file(cytonorm_resources / f"Norm_Gates_{patient}_Unstim_Control_2.fcs").result
    assert before.nk_percent_of_lymphocytes is not None
    assert after.nk_percent_of_lymphocytes is not None
    assert abs(after.nk_percent_of_lymphocytes - before.nk_percent_of_lymphocytes) < 2.5
    assert any("taken as zero counts" in n for n in after.notes)


def test_an_identity_matrix_over_unmixed_channels_is_right(aurora_pbmc: Path) -> None:
    """A spectral cytometer's export may carry an identity $SPILLOVER over its unmixed
    channels; it was withheld as uncompensated, with advice to supply a matrix that would
    compensate twice (review 34). Unmixed data need none: the result is as without it."""
    import dataclasses

    import numpy as np

    from nkpanel.flow.analyze import analyze_sample
    from nkpanel.flow.sample import Spillover, read_fcs

    sample = read_fcs(aurora_pbmc)
    stained = tuple(c.pnn for c in sample.channels if c.pns.strip() or c.pnn.startswith("CD"))
    identity = Spillover(stained, np.eye(len(stained)))
    with_identity = analyze_sample(dataclasses.replace(sample, spillover=identity)).result
    plain = analyze_sample(sample).result
    assert with_identity.reportable, with_identity.not_reportable_reasons
    assert with_identity.nk_percent_of_lymphocytes == plain.nk_percent_of_lymphocytes
