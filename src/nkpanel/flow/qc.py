"""Quality checks on a flow result. A failed blocking check makes the result not reportable.

Default limits come from counting statistics, not from one data set: a count of ``n`` events has
a Poisson coefficient of variation of 1/√n, so 100 events give 10%, 400 give 5%, 1,000 give 3.2%.
Labs set their own limits (``QCLimits``); the defaults below say why they are what they are.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SATURATED", "QCFlag", "QCLimits"]

#: a value at or above this fraction of its channel's top (:attr:`Channel.top`) is saturated:
#: piled at the end of the scale, with no measurable position
SATURATED = 0.999


@dataclass(frozen=True)
class QCLimits:
    """Limits for the flow quality checks.

    Attributes
    ----------
    min_lymphocyte_events
        2,000: at an NK fraction of 5% this still leaves 100 NK events (CV 10%).
    min_nk_events
        100: Poisson CV of the NK count ≤ 10%.
    min_bead_events
        1,000: Poisson CV of the bead count ≤ 3.2%, so the bead term adds little to the absolute
        count's error.
    max_unstable_time_fraction
        0.05: more than a twentieth of the acquisition time with an event rate off the median
        (by more than 25% and 4 Poisson SDs: a clog or a bubble) means part of the tube was
        not sampled evenly. A steady Poisson stream exceeds 4 SDs in well under 1% of bins.
    max_saturated_fraction
        0.02: events piled at the top of a channel's range cannot be placed by a gate.
    max_lymphosum_deviation
        0.10: T + B + NK cells should make up the lymphocytes they were gated from, 100 ± 10%
        (the "lymphosum", IUPAC Gold Book, Pure Appl Chem 2012;84:1113, p. 1207). A shortfall
        means other cells (monocytes, debris) sit in the lymphocyte gate and lower NK % of
        lymphocytes. A warning, not a block: the gate's purity differs between species and
        instruments, and a person decides on the plots. Checked where T, B and NK cells are all
        gated (automated gating with CD19); it cannot see other cells that were gated as NK.
    min_lymphosum
        0.5: below it the lymphosum check blocks: when fewer than half the events of the
        lymphocyte gate are T, B or NK cells, the gate did not find the lymphocytes (without
        CD45, monocytes and debris can fill it), and NK % of "lymphocytes" means nothing.
    """

    min_lymphocyte_events: int = 2000
    min_nk_events: int = 100
    min_bead_events: int = 1000
    max_unstable_time_fraction: float = 0.05
    max_saturated_fraction: float = 0.02
    max_lymphosum_deviation: float = 0.10
    min_lymphosum: float = 0.5


@dataclass(frozen=True)
class QCFlag:
    """One check: its name, whether it passed, the measured value and the limit, and why."""

    check: str
    passed: bool
    value: float | None
    limit: float | None
    reason: str
    blocking: bool = True

    @property
    def label(self) -> str:
        state = "pass" if self.passed else ("FAIL" if self.blocking else "warn")
        return f"{self.check}: {state}"
