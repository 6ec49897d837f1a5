"""Precision policies: parsing ``--precision`` (names and JSON files) and the plan per component (docs/precision.md)."""
from __future__ import annotations

import json

import pytest

from packager.build import precision as P
from packager.build import registry
from packager.contract.errors import PackagerError

COMPONENTS = ["campplus", "llm", "flow", "hift"]


def test_recommended_is_the_default():
    plan = P.plan(None, registry.recommended_precisions(COMPONENTS))
    assert plan.name == "recommended"
    got = {c: plan.for_component(c).precision for c in COMPONENTS}
    assert got == {"campplus": "fp16", "llm": "fp16", "flow": "fp16", "hift": "fp32"}
    assert plan.for_component("llm").unity_quantization == "float16"
    assert plan.for_component("hift").unity_quantization == "none"


def test_recommendations_are_declared_by_the_components():
    """precision.py knows no component: the plan takes each one's declared recommended_precision, or any mapping."""
    from pathlib import Path

    from packager.build import registry

    assert registry.recommended_precisions(COMPONENTS) == {n: registry.get(n).recommended_precision for n in COMPONENTS}
    plan = P.plan("recommended", {"a": "uint8", "b": "fp32"})
    assert plan.for_component("a") == P.ComponentPolicy("uint8") and plan.for_component("b").precision == "fp32"
    assert P.plan("fp16", {"a": "uint8"}).for_component("a").precision == "fp16"
    source = Path(P.__file__).read_text()
    for name in registry.names():
        assert f'"{name}"' not in source and f"'{name}'" not in source


def test_a_bad_declared_recommendation_names_the_component(monkeypatch):
    from packager.components.hift.component import HiFT

    monkeypatch.setattr(HiFT, "recommended_precision", "int8")
    with pytest.raises(PackagerError, match="recommended precision") as e:
        P.plan(None, registry.recommended_precisions(COMPONENTS))
    assert e.value.key == "hift"


def test_no_rewrite_changes_a_precision_declaration():
    """keep_float32 is declared up front; exporting (rewrites included) leaves it as it was."""
    from packager.build import registry
    from packager.build.checkpoint import Source
    from packager.build.stages.export import export_graph

    for name in COMPONENTS:
        for g in registry.get(name).build(Source(preset="tiny")).graphs:
            if g.rewrite is None:
                continue
            before = tuple(g.keep_float32)
            export_graph(g)
            assert tuple(g.keep_float32) == before, g.name


@pytest.mark.parametrize("name", ["fp32", "fp16"])
def test_named_policies_apply_to_every_component(name):
    plan = P.plan(name, registry.recommended_precisions(COMPONENTS))
    assert {plan.for_component(c).precision for c in COMPONENTS} == {name}


def test_json_policy_with_keep_list_and_defaults(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"llm": "uint8", "flow": {"precision": "fp16", "keep_float32": ["/dit/Softmax"]},
                                "hift": "int8"}))
    plan = P.plan(str(path), registry.recommended_precisions(COMPONENTS))
    assert plan.name == "p.json"
    assert plan.for_component("llm") == P.ComponentPolicy("uint8")
    assert plan.for_component("llm").unity_quantization == "uint8"
    assert plan.for_component("flow") == P.ComponentPolicy("fp16", ("/dit/Softmax",))
    assert plan.for_component("hift").unity_quantization == "none"  # int8: onnxruntime only
    assert plan.for_component("campplus").precision == "fp16"  # not named: recommended
    assert plan.for_component("flow").to_json() == {"precision": "fp16", "keep_float32": ["/dit/Softmax"]}


def test_a_graph_of_a_component_at_its_own_precision(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"llm": {"precision": "fp16", "graphs": {"llm_text_embed": "uint8"}}}))
    llm = P.plan(str(path), registry.recommended_precisions(COMPONENTS)).for_component("llm")
    assert llm.for_graph("llm_text_embed") == P.ComponentPolicy("uint8")
    assert llm.for_graph("llm_step") == P.ComponentPolicy("fp16")
    assert llm.to_json() == {"precision": "fp16", "graphs": {"llm_text_embed": "uint8"}}
    P.check_graph_names(llm, "llm", ["llm_text_embed", "llm_step"], "p.json")
    with pytest.raises(PackagerError, match="llm.graphs.llm_text_embed") as e:
        P.check_graph_names(llm, "llm", ["llm_step"], "p.json")
    assert "p.json" in str(e.value) and "llm_step" in str(e.value)


@pytest.mark.parametrize("content, message", [
    ({"vocoder": "fp16"}, "not being built"),
    ({"llm": "bf16"}, "unknown precision"),
    ({"llm": {"precision": "fp16", "keep": []}}, "unknown field"),
    ({"llm": {"precision": "fp16", "keep_float32": "x"}}, "list of node"),
    ({"llm": {"precision": "fp16", "graphs": ["llm_text_embed"]}}, "graph name -> precision"),
    ({"llm": {"precision": "fp16", "graphs": {"llm_text_embed": "int4"}}}, "llm.graphs.llm_text_embed"),
    (["fp16"], "JSON object"),
])
def test_bad_json_policies_name_the_key(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(content))
    with pytest.raises(PackagerError, match=message):
        P.plan(str(path), registry.recommended_precisions(COMPONENTS))


def test_unknown_name_and_missing_or_broken_file(tmp_path):
    with pytest.raises(PackagerError, match="unknown precision policy"):
        P.plan("half", registry.recommended_precisions(COMPONENTS))
    with pytest.raises(PackagerError, match="file not found"):
        P.plan(str(tmp_path / "nope.json"), registry.recommended_precisions(COMPONENTS))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(PackagerError, match="not valid JSON"):
        P.plan(str(bad), registry.recommended_precisions(COMPONENTS))


@pytest.mark.parametrize("policy", ["fp32", "fp16"])
def test_policy_bundles_verify_and_pass_preflight(tmp_path, policy):
    """What must hold for the named policies (the default `recommended` is tests/verbs/test_cli.py's tiny_bundle)."""
    import json

    from tests.conftest import run_cli

    out = tmp_path / policy
    code, _, err = run_cli("build", "--out", out, "--precision", policy)
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    graphs = [g for c in manifest["components"] for g in c["graphs"]]
    dsp = [g for g in graphs if g.get("precision_cost", {}).get("exact_dsp", {}).get("whole_graph")]
    assert [g["name"] for g in dsp] == ([] if policy == "fp32" else ["campplus_fbank"])  # a DSP graph: fp32 always
    assert all(g["precision"] == "fp32" and g["unity_quantization"] == "none" for g in dsp)
    graphs = [g for g in graphs if g not in dsp]
    assert {g["precision"] for g in graphs} == {policy}
    if policy == "fp16":
        assert all(g["precision_cost"]["bytes"] < g["precision_cost"]["bytes_fp32"] for g in graphs)
        assert all(g["precision_cost"]["error"] for g in graphs)
    code, out_text, _ = run_cli("verify", out)
    assert code == 0, out_text
    for target in ("ie-2.4", "sentis-2.1"):
        code, out_text, _ = run_cli("check", out, "--target", target)
        assert code == 0 and ": 0 errors, " in out_text, out_text


def test_a_json_policy_gives_single_graphs_their_own_precision(tmp_path):
    """The LLM's embedding tables are graphs of their own: uint8 there, fp16 for the step."""
    from tests.conftest import run_cli

    policy = tmp_path / "mix.json"
    policy.write_text(json.dumps({"llm": {"precision": "fp16", "graphs": {"llm_text_embed": "uint8"}}}))
    out = tmp_path / "mix"
    code, _, err = run_cli("build", "--components", "llm", "--out", out, "--precision", policy, "--quiet")
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision_policy"]["components"]["llm"] == {"precision": "fp16",
                                                                 "graphs": {"llm_text_embed": "uint8"}}
    got = {g["name"]: (g["precision"], g["unity_quantization"]) for g in manifest["components"][0]["graphs"]}
    assert got == {"llm_text_embed": ("uint8", "uint8"), "llm_speech_embed": ("fp16", "float16"),
                   "llm_step": ("fp16", "float16")}
    code, text, _ = run_cli("verify", out)
    assert code == 0, text
    # a graph the component does not have: one message naming the file, key and the graphs there are; nothing written
    policy.write_text(json.dumps({"llm": {"precision": "fp16", "graphs": {"llm_text_embeds": "uint8"}}}))
    code, _, err = run_cli("build", "--components", "llm", "--out", tmp_path / "bad", "--precision", policy)
    assert code == 2 and "mix.json: llm.graphs.llm_text_embeds: names a graph this component does not have" in err
    assert "llm_text_embed, llm_speech_embed, llm_step" in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()
