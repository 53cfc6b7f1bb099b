"""Peripheral-blood NK cells by flow cytometry: FCS reading, markers, compensation, automated
and template gating, counts, quality control, figures and outputs.

The modules are imported directly (``nkpanel.flow.analyze``, ``nkpanel.flow.sample``…); this
package keeps no state of its own.
"""
