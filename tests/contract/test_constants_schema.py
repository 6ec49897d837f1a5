"""The host constants are one contract: every key the C# host loops read from a component's ``constants`` is a key
that ``schemas/manifest.schema.json`` types for that contract, and every bundle the build writes satisfies it."""
from __future__ import annotations

import json
import re

from tests.conftest import REPO

SCHEMA = json.loads((REPO / "schemas" / "manifest.schema.json").read_text())
RUNTIME = REPO / "unity_project" / "Assets" / "CosyVoice3" / "Runtime"
# C#'s Constants.Int/Number/String/Node/... (name, "key") calls; PipelineGoldens.cs reads pipeline goldens, not constants
READ = re.compile(r'Constants\.(?:Int|Ints|Number|Numbers|String|Node|Bool|Has)\([\w.()"]+?, "(\w+)"')
COMPONENTS = ("campplus", "llm", "flow", "hift")


def _schema_keys(node, defs) -> set[str]:
    """Every property name anywhere under ``node`` (following local $refs)."""
    keys: set[str] = set()
    if isinstance(node, dict):
        if "$ref" in node:
            keys |= _schema_keys(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        for k, v in node.items():
            if k == "properties":
                keys |= set(v)
            keys |= _schema_keys(v, defs)
    elif isinstance(node, list):
        for v in node:
            keys |= _schema_keys(v, defs)
    return keys


def test_every_constant_the_csharp_host_reads_is_in_the_schema():
    defs = SCHEMA["$defs"]
    typed = set().union(*(_schema_keys(defs[f"{c}_constants"], defs) for c in COMPONENTS))
    read = {m.group(1) for path in RUNTIME.rglob("*.cs") if path.name != "PipelineGoldens.cs"
            for m in READ.finditer(path.read_text(encoding="utf-8"))}
    assert len(read) > 30  # the pattern still finds the reads
    assert read - typed == set()


def test_each_component_has_typed_constants_with_its_graph_roles():
    defs = SCHEMA["$defs"]
    rules = {r["if"]["properties"]["name"]["const"]: r["then"]["properties"]["constants"]["$ref"]
             for r in defs["component"]["allOf"]}
    assert rules == {c: f"#/$defs/{c}_constants" for c in COMPONENTS}
    for c in COMPONENTS:
        d = defs[f"{c}_constants"]
        assert d["additionalProperties"] is False and "graphs" in d["required"], c
        assert defs[f"{c}_constants"]["properties"]["graphs"]["additionalProperties"] is False, c


def test_the_tiny_bundle_names_every_graph_by_role(tiny_bundle):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    for c in manifest["components"]:
        assert sorted(c["constants"]["graphs"].values()) == sorted(g["name"] for g in c["graphs"]), c["name"]
