"""The README's "Methods" section lists every registered method and every shipped preset, and its
table is what ``spadekit list --markdown`` prints (so a new method or preset cannot go undocumented)."""

from __future__ import annotations

import re
from pathlib import Path

from spadekit.commands.list import methods_markdown
from spadekit.config import list_presets
from spadekit.methods import list_methods

README = Path(__file__).resolve().parents[1] / "README.md"


def methods_section() -> str:
    text = README.read_text()
    match = re.search(r"^## Methods\n(.*?)(?=^## )", text, flags=re.S | re.M)
    assert match, "README.md has no '## Methods' section"
    return match.group(1)


def test_every_method_and_preset_is_in_the_methods_section() -> None:
    section = methods_section()
    for name, method in list_methods().items():
        assert f"**{method.title}** (`{name}`)" in section, f"method {name} is missing from README's Methods section"
        assert method.paper in section, f"the paper of {name} is missing"
    for preset in list_presets():
        assert f"`{preset}`" in section, f"preset {preset} is missing from README's Methods section"
    assert "pix2pixHD baseline" in section and "model.generator=pix2pixhd" in section


def test_the_methods_table_is_the_generated_one() -> None:
    section = methods_section()
    table = re.search(r"<!-- methods table: spadekit list --markdown -->\n(.*?)<!-- end of methods table -->", section, re.S)
    assert table, "the generated table's markers are missing"
    assert table.group(1) == methods_markdown(), "README's methods table is stale: paste `spadekit list --markdown`"
