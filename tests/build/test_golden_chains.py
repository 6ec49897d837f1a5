"""Chained golden cases are consistent under every precision policy: each carried input of a chain step is stored as,
bit for bit, the golden output of the previous step it is carried from (so a host that runs a chain from its root,
carrying outputs, reaches every step's golden), and ``verify`` checks it.

The tiny bundle is built once per policy, only the components with chained goldens (llm: prefill -> decode1..3
carrying the KV cache; flow: Euler steps, a chain with nothing carried).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from packager.contract.arrays import npy_bytes
from packager.build.component import GoldenCase
from packager.contract.errors import PackagerError
from packager.build.stages import golden as golden_stage
from packager.verbs.verify import golden_cases, verify, verify_chains
from tests.conftest import run_cli

COMPONENTS = "llm,flow"
POLICIES = ("fp32", "recommended", "fp16", "uint8")
CARRY = {"past_key": "present_key", "past_value": "present_value"}
DECODES = ("decode1", "decode2", "decode3")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """One bundle per policy (uint8: a JSON policy file), built once for the module."""
    root = tmp_path_factory.mktemp("chains")
    policy_file = root / "uint8.json"
    policy_file.write_text(json.dumps({c: "uint8" for c in COMPONENTS.split(",")}))
    out = {}
    for name in POLICIES:
        precision = policy_file if name == "uint8" else name
        code, _, err = run_cli("build", "--out", root / name, "--components", COMPONENTS, "--precision", precision,
                               "--quiet")
        assert code == 0, err
        out[name] = root / name
    return out


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def _graph(manifest: dict, comp: str, graph: str) -> dict:
    c = next(c for c in manifest["components"] if c["name"] == comp)
    return next(g for g in c["graphs"] if g["name"] == graph)


def _array(bundle: Path, case: dict, side: str, name: str) -> np.ndarray:
    return np.load(bundle / next(t["file"] for t in case[side] if t["name"] == name))


def _chained(bundle: Path):
    """(component, graph, case, input, after, output, stored input, golden output) for every carried tensor."""
    for c in _manifest(bundle)["components"]:
        for g in c["graphs"]:
            cases = {k["name"]: k for k in g["goldens"]}
            for k in g["goldens"]:
                chain = k.get("chain") or {}
                for dst, src in chain.get("carry", {}).items():
                    after = cases[chain["after"]]
                    yield (c["name"], g["name"], k["name"], dst, after["name"], src,
                           _array(bundle, k, "inputs", dst), _array(bundle, after, "outputs", src))


@pytest.mark.parametrize("policy", POLICIES)
def test_carried_inputs_are_the_previous_golden_outputs_bit_for_bit(built, policy):
    bundle = built[policy]
    found = list(_chained(bundle))
    # llm_step: decode1..3 each carry the KV cache from the step before; the flow Euler chain carries nothing
    assert [(g, k, i, a, o) for _, g, k, i, a, o, _, _ in found] == [
        ("llm_step", d, i, a, o) for d, a in zip(DECODES, ("prefill", *DECODES)) for i, o in CARRY.items()]
    for comp, graph, case, inp, after, out, stored, golden in found:
        where = f"{policy}: {comp}/{graph}/{case}/{inp} <- {after}/{out}"
        assert stored.dtype == golden.dtype == np.float32, where
        assert stored.shape == golden.shape, where
        assert stored.tobytes() == golden.tobytes(), where
    # the cache grows by one position per decode step: the carried arrays are the real KV caches
    lengths = [stored.shape[3] for _, _, _, inp, _, _, stored, _ in found if inp == "past_key"]
    prompt = _array(bundle, _graph(_manifest(bundle), "llm", "llm_step")["goldens"][0], "inputs",
                    "inputs_embeds").shape[1]
    assert lengths == [prompt, prompt + 1, prompt + 2]
    flow = _graph(_manifest(bundle), "flow", "flow_estimator")
    assert [k.get("chain") for k in flow["goldens"][:3]] == [
        None, {"after": "euler_step1", "carry": {}}, {"after": "euler_step2", "carry": {}}]


def test_reduced_precision_chains_carry_the_shipped_graphs_outputs(built):
    """fp32: the carried cache is the PyTorch reference's; fp16/uint8: the shipped graph's (Sentis view) own outputs,
    which differ from the reference's by the precision's error, so the chains really were recomputed."""
    def decode1_past_key(policy: str) -> np.ndarray:
        g = _graph(_manifest(built[policy]), "llm", "llm_step")
        return _array(built[policy], g["goldens"][1], "inputs", "past_key")

    reference = decode1_past_key("fp32")
    manifests = {p: _manifest(built[p]) for p in POLICIES}
    assert _graph(manifests["fp32"], "llm", "llm_step")["precision"] == "fp32"
    for policy, precision in (("recommended", "fp16"), ("fp16", "fp16"), ("uint8", "uint8")):
        g = _graph(manifests[policy], "llm", "llm_step")
        assert (g["precision"], g["unity_quantization"]) == (precision, "float16" if precision == "fp16" else "uint8")
        # decode1's cache is the variant's prefill output: it differs from the reference's by the variant's error,
        # which the precision cost (every case on the reference inputs) bounds: measured 2.0e-3 fp16, 7.8e-2 uint8
        diff = float(np.abs(decode1_past_key(policy).astype(np.float64) - reference).max())
        cost = {m["output"]: m["max_abs"] for m in g["precision_cost"]["error"]}
        assert 0 < diff <= cost["present_key"] + 1e-9, (policy, diff, cost)
    # recommended is llm fp16, so its llm_step goldens are the fp16 policy's, byte for byte
    rec, fp16 = (_graph(manifests[p], "llm", "llm_step")["goldens"] for p in ("recommended", "fp16"))
    assert [t["sha256"] for k in rec for t in k["inputs"] + k["outputs"]] == \
        [t["sha256"] for k in fp16 for t in k["inputs"] + k["outputs"]]


@pytest.mark.parametrize("policy", POLICIES)
def test_verify_passes_with_chain_rows(built, policy):
    code, out, err = run_cli("verify", built[policy])
    assert code == 0, out + err
    chain_rows = [line.split() for line in out.splitlines() if line.startswith("chain ")]
    assert [(r[1], r[2]) for r in chain_rows] == [
        (f"llm/llm_step/{d}/{i}", "ok") for d in DECODES for i in CARRY]


def _rewrite_array(bundle: Path, entry: dict, arr: np.ndarray) -> None:
    """Replace a golden array and fix its sha256/bytes in the manifest, so the file checks pass."""
    data = npy_bytes(arr)
    (bundle / entry["file"]).write_bytes(data)
    entry["sha256"], entry["bytes"] = hashlib.sha256(data).hexdigest(), len(data)


def test_verify_reports_a_one_ulp_carried_input_change(built, tmp_path):
    """One element of decode2's stored past_value moved by one float32 ulp (its checksum fixed): the goldens are
    still reproduced within tolerance, and only the chain check catches it, naming bundle/graph/case/tensor."""
    bundle = tmp_path / "bundle"
    shutil.copytree(built["recommended"], bundle)
    manifest = _manifest(bundle)
    case = _graph(manifest, "llm", "llm_step")["goldens"][2]
    assert case["name"] == "decode2"
    entry = next(t for t in case["inputs"] if t["name"] == "past_value")
    arr = np.load(bundle / entry["file"])
    idx = (1, 0, 1, 3, 7)
    before = arr[idx]
    arr[idx] = np.nextafter(arr[idx], np.float32(np.inf))
    _rewrite_array(bundle, entry, arr)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))

    rows = verify(bundle)
    failed = [r for r in rows if not r.ok]
    assert [(r.check, r.subject) for r in failed] == [("chain", "llm/llm_step/decode2/past_value")]
    detail = failed[0].detail
    assert str(bundle) in detail and "llm/llm_step/decode2" in detail
    assert "'past_value'" in detail and "'present_value'" in detail and "'decode1'" in detail
    assert "differs in 1 of 1216 elements" in detail
    assert f"max |diff| {float(abs(arr[idx] - before)):.3g}" in detail
    assert all(r.ok for r in rows if r.check == "golden")  # a golden reproduction cannot see it

    code, out, _ = run_cli("verify", bundle)
    assert code == 1 and "FAIL" in out and "1 failed" in out


def test_verify_reports_dtype_and_shape_of_a_carried_input(built):
    """The chain check on its own (the cases as verify reads them, changed in memory): a wrong shape and a wrong
    dtype are reported as such, the other carries pass."""
    bundle = built["fp32"]
    cases = _cases(bundle, "llm", "llm_step")
    k = cases[1].inputs["past_key"]
    cases[1].inputs["past_key"] = k[:, :, :, :-1]
    cases[3].inputs["past_value"] = cases[3].inputs["past_value"].astype(np.float16)
    rows = verify_chains(bundle, cases, "llm/llm_step")
    assert [(r.subject, r.ok) for r in rows] == [(f"llm/llm_step/{d}/{i}", (d, i) not in {
        ("decode1", "past_key"), ("decode3", "past_value")}) for d in DECODES for i in CARRY]
    bad = {r.subject: r.detail for r in rows if not r.ok}
    assert bad["llm/llm_step/decode1/past_key"].endswith(f"shape {list(k.shape[:3]) + [k.shape[3] - 1, 16]} != "
                                                         f"{list(k.shape)}")
    assert bad["llm/llm_step/decode3/past_value"].endswith("dtype float16 != float32")


def _cases(bundle: Path, comp: str, graph: str) -> list[GoldenCase]:
    return golden_cases(bundle, _graph(_manifest(bundle), comp, graph))


# ---- the chain functions on their own (no build) ----------------------------------------------------------------

def _chain_of(n: int) -> list[GoldenCase]:
    """A toy recurrence state -> next = state + 1, each step's stored state the previous step's next."""
    cases, state = [], np.zeros(3, np.float32)
    for i in range(n):
        chain = None if i == 0 else {"after": f"s{i - 1}", "carry": {"state": "next"}}
        cases.append(GoldenCase(f"s{i}", {"state": state, "x": np.float32([i])}, {"next": state + 1}, chain))
        state = state + 1
    return cases


def test_carried_goldens_feed_the_variants_own_outputs_and_rerun_only_what_changed():
    reference = _chain_of(3)
    variant = lambda inputs: {"next": inputs["state"] + np.float32(1.5)}  # noqa: E731  (a "reduced precision")
    first = [variant(c.inputs) for c in reference]  # on the reference inputs (the precision cost's runs)
    runs, ticks = [], []

    def run(inputs):
        runs.append(inputs["x"][0])
        return variant(inputs)

    got = golden_stage.carried_goldens(reference, first, run, on_case=lambda: ticks.append(1))
    assert [c.name for c in got] == ["s0", "s1", "s2"] and [c.chain for c in got] == [c.chain for c in reference]
    np.testing.assert_array_equal(got[0].outputs["next"], [1.5, 1.5, 1.5])
    np.testing.assert_array_equal(got[1].inputs["state"], [1.5, 1.5, 1.5])
    np.testing.assert_array_equal(got[2].inputs["state"], [3.0, 3.0, 3.0])
    np.testing.assert_array_equal(got[2].outputs["next"], [4.5, 4.5, 4.5])
    assert runs == [1.0, 2.0] and len(ticks) == golden_stage.chain_runs(reference) == 2
    assert all(m.ok for m in golden_stage.carry_mismatches(got))
    assert [m.ok for m in golden_stage.carry_mismatches(reference[:1] + got[1:])] == [False, True]
    # a variant equal to the reference (fp32) keeps every case as it is, without a run
    same = golden_stage.carried_goldens(reference, [{"next": c.outputs["next"]} for c in reference],
                                        lambda _: pytest.fail("nothing changed: no run"))
    assert all(golden_stage.same_bytes(a.inputs["state"], b.inputs["state"]) for a, b in zip(same, reference))


def test_carry_mismatches_name_each_problem():
    cases = _chain_of(4)
    cases[1] = dataclasses.replace(cases[1], inputs={**cases[1].inputs, "state": np.float32([1, 1, 1.25])})
    cases[2] = dataclasses.replace(cases[2], inputs={**cases[2].inputs, "state": np.float32([2, 2, 2.5])})
    cases[3] = dataclasses.replace(cases[3], chain={"after": "s2", "carry": {"state": "missing"}})
    checks = golden_stage.carry_mismatches(cases)
    assert [(m.case, m.input, m.after, m.output) for m in checks] == [
        ("s1", "state", "s0", "next"), ("s2", "state", "s1", "next"), ("s3", "state", "s2", "missing")]
    assert checks[0].problem == "differs in 1 of 3 elements, max |diff| 0.25"
    assert checks[1].problem == "differs in 1 of 3 elements, max |diff| 0.5"
    assert checks[2].problem == "case 's2' stores no output 'missing', so the carry cannot be checked"
    negative_zero = [dataclasses.replace(c) for c in _chain_of(2)]
    negative_zero[0].outputs["next"] = np.float32([1, 1, 1])
    negative_zero[1].inputs["state"] = np.float32([1, 1, 1])
    assert golden_stage.carry_mismatches(negative_zero)[0].ok
    negative_zero[0].outputs["next"] = np.float32([0.0, 0, 0])
    negative_zero[1].inputs["state"] = np.float32([-0.0, 0, 0])
    assert golden_stage.carry_mismatches(negative_zero)[0].problem == "differs in 1 of 3 elements, max |diff| 0"


def test_the_build_refuses_an_inconsistent_reference_chain(tmp_path):
    cases = _chain_of(2)
    cases[1].inputs["state"] = cases[1].inputs["state"] + np.float32(1e-3)
    with pytest.raises(PackagerError) as exc:
        golden_stage.write_cases(tmp_path, "toy", "step", cases)
    message = str(exc.value)
    assert "toy/step" in message and "inconsistent golden chain" in message
    assert "s1: input 'state' carried from s0's output 'next': differs in 3 of 3 elements, max |diff| 0.001" in message
    assert not (tmp_path / "Golden~").exists()
    written = golden_stage.write_cases(tmp_path, "toy", "step", _chain_of(2))
    assert [e["chain"] for e in written[1:]] == [{"after": "s0", "carry": {"state": "next"}}]
