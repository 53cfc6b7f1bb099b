"""docs/case-manifest.md: its examples load, and it names every key the manifest takes (a key
added to the models without a word in the docs fails here)."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from nkpanel.case import Case, load_case
from nkpanel.flow.markers import load_aliases
from nkpanel.report.model import LabInfo, load_lab_info

DOC = Path(__file__).resolve().parents[1] / "docs" / "case-manifest.md"


def _blocks() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", DOC.read_text("utf-8"), flags=re.S)


def _keys(model: type[BaseModel]) -> set[str]:
    """Every field name of ``model`` and of the models it holds."""
    keys: set[str] = set()
    for name, f in model.model_fields.items():
        keys.add(name)
        for arg in (f.annotation, *typing.get_args(f.annotation)):
            for inner in (arg, *typing.get_args(arg)):
                if isinstance(inner, type) and issubclass(inner, BaseModel) and inner is not model:
                    keys |= _keys(inner)
    return keys - {"base_dir"}  # set by nkpanel from the file's folder, not written


def test_the_manifest_example_is_a_valid_case(tmp_path: Path) -> None:
    manifest, lab, aliases = _blocks()
    path = tmp_path / "case.toml"
    path.write_text(manifest, "utf-8")
    case = load_case(path)
    assert case.case.id == "EP-2026-0042" and len(case.cytotoxicity) == 2
    (tmp_path / "lab.toml").write_text(lab, "utf-8")
    lab = load_lab_info(tmp_path / "lab.toml")  # its authoriser accepted, and not read
    assert (lab.analyst, lab.authoriser) == ("A. Analyst", None)
    (tmp_path / "aliases.toml").write_text(aliases, "utf-8")
    assert load_aliases(tmp_path / "aliases.toml").aliases_for("CD56")[0][-2:] == (
        "MyCD56",
        "NCAM-custom",
    )


@pytest.mark.parametrize(("model", "block"), [(Case, 0), (LabInfo, 1)])
def test_every_key_is_documented(model: type[BaseModel], block: int) -> None:
    text = DOC.read_text("utf-8")
    written = set(re.findall(r"^#?\s*([a-z_]+) = ", _blocks()[block], flags=re.M))
    table_names = set(re.findall(r"\[+([a-z_.]+)\]+", text))
    named = written | {t.split(".")[-1] for t in table_names}
    missing = sorted(k for k in _keys(model) if k not in named and f"`{k}`" not in text)
    assert not missing, f"keys not in {DOC.name}: {missing}"
