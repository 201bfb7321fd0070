"""The README's parameter table and docs/parameters.md say what the nodes declare."""

from __future__ import annotations

import re

import pytest

from moodstream.params import markdown_reference, node_specs


def readme_rows(text: str) -> list[tuple[list[str], list[str], list[str]]]:
    section = text[text.index("### Parameters"):]
    table = section[section.index("| --- |"):]
    table = table[: table.index("\n\n")]
    rows = []
    for line in table.splitlines()[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        nodes = [n.strip() for n in cells[0].split(",")]
        names = re.findall(r"`([\w.]+)`", cells[1])
        values = [v.strip().strip("`") for v in cells[2].split(", ")] if "," in cells[2] else [cells[2].strip("`")]
        rows.append((nodes, names, values if len(values) == len(names) else values * len(names)))
    return rows


def same(documented: str, default) -> bool:
    if isinstance(default, bool):
        return documented == str(default).lower()
    if isinstance(default, int | float):
        return float(documented) == default
    return documented.strip('"') == default


def test_readme_table_matches_the_declared_parameters(repo_root):
    specs = node_specs()
    documented = set()
    for nodes, names, values in readme_rows((repo_root / "README.md").read_text()):
        for node in nodes:
            for name, value in zip(names, values, strict=True):
                assert name in specs[node], f"README documents {node}.{name}, which the node does not declare"
                assert same(value, specs[node][name].default), (node, name, value, specs[node][name].default)
                documented.add((node, name))
    for node in ("capture", "detect", "classify", "console"):
        missing = {name for name in specs[node] if (node, name) not in documented}
        assert not missing, f"README's parameter table lacks {node}: {sorted(missing)}"


def test_the_parameter_reference_is_generated_from_the_specs(repo_root):
    assert (repo_root / "docs" / "parameters.md").read_text() == markdown_reference(), (
        "docs/parameters.md is stale: moodstream params --markdown > docs/parameters.md")


@pytest.mark.parametrize("node", ["capture", "detect", "classify", "console", "bridge", "openmv"])
def test_every_parameter_is_described_with_its_allowed_values(node):
    for name, spec in node_specs()[node].items():
        assert spec.description and spec.allowed(), (node, name)
        assert spec.check(spec.default) == "", (node, name)
