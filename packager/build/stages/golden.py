"""Golden stage: write case tensors as .npy (v1.0, little-endian, C order) under ``Golden~`` and describe them.

Chained cases (``chain: {after, carry}``) are consistent: each carried input is stored as the exact bytes of the
golden output it is carried from, so a host that runs a chain from its root, feeding each step's outputs to the next,
reaches every step's golden (``carried_goldens`` makes a variant's chain so, ``carry_mismatches`` checks it for the
build and for ``verify``).
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from packager.contract.manifest import GOLDEN_DIR, PIPELINE_GOLDEN_DIR
from packager.contract.arrays import npy_bytes
from packager.contract.errors import PackagerError, VerificationError

if TYPE_CHECKING:  # torch-free at run time: voice packs and synth write/read arrays with these helpers
    from packager.build.component import GoldenCase


def write_array(root: Path, rel: str, name: str, arr: np.ndarray, description: str = "") -> dict[str, Any]:
    data = npy_bytes(arr)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    entry: dict[str, Any] = {"name": name, "file": rel, "sha256": hashlib.sha256(data).hexdigest(),
                             "bytes": len(data), "dtype": str(arr.dtype), "shape": [int(d) for d in arr.shape]}
    if description:
        entry["description"] = description
    return entry


def write_cases(root: Path, component: str, graph: str, cases: Sequence[GoldenCase]) -> list[dict[str, Any]]:
    """The manifest entries of a graph's golden cases, written; refused (a build error) when a chained case's
    carried input is not the golden output it is carried from."""
    bad = [m for m in carry_mismatches(cases) if not m.ok]
    if bad:
        raise VerificationError("inconsistent golden chain: a carried input is not the golden output it is carried "
                                "from:\n  " + "\n  ".join(m.summary() for m in bad), key=f"{component}/{graph}")
    return [write_case(root, component, graph, c) for c in cases]


def write_case(root: Path, component: str, graph: str, case: GoldenCase) -> dict[str, Any]:
    base = f"{GOLDEN_DIR}/{component}/{graph}/{case.name}"
    entry: dict[str, Any] = {
        "name": case.name,
        "inputs": [write_array(root, f"{base}/in.{k}.npy", k, v) for k, v in case.inputs.items()],
        "outputs": [write_array(root, f"{base}/out.{k}.npy", k, v) for k, v in case.outputs.items()],
    }
    if case.description:
        entry["description"] = case.description
    if case.chain:
        entry["chain"] = case.chain
    return entry


# ---- chains ----------------------------------------------------------------------------------------------------------

def chain_runs(cases: Sequence[GoldenCase]) -> int:
    """How many cases ``carried_goldens`` may run again (those with a non-empty ``carry``): a progress total."""
    return sum(1 for c in cases if c.chain and c.chain.get("carry"))


def carried_goldens(cases: Sequence[GoldenCase], outputs: Sequence[Mapping[str, np.ndarray]],
                    run: Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]],
                    on_case: Callable[[], None] = lambda: None) -> list[GoldenCase]:
    """The goldens of a graph variant whose outputs are not the reference cases' (a reduced-precision graph).

    ``outputs[i]`` is ``run`` on ``cases[i].inputs`` (the reference inputs; what the precision cost compares with
    the reference). A chained case gets, for each carried input, the variant's own output of its ``after`` case
    (its golden, the same bytes), and its outputs are ``run`` again on those inputs where that changed them: the
    stored inputs are what a host carrying the variant's outputs feeds, and every stored output is still ``run`` on
    the stored inputs. The other inputs and cases are kept. ``on_case`` is called once per chained case with a
    carry (``chain_runs``)."""
    done: dict[str, Mapping[str, np.ndarray]] = {}  # case name -> its variant outputs (all of them)
    result = []
    for case, out in zip(cases, outputs, strict=True):
        carry = (case.chain or {}).get("carry") or {}
        inputs = dict(case.inputs)
        if carry:
            after = case.chain["after"]
            if after not in done:
                raise PackagerError("golden chain: 'after' is not an earlier case", key=case.name, found=after)
            for dst, src in carry.items():
                inputs[dst] = done[after][src]
            if any(not same_bytes(inputs[k], case.inputs[k]) for k in carry):
                out = run(inputs)
            on_case()
        done[case.name] = out
        result.append(dataclasses.replace(case, inputs=inputs, outputs={k: out[k] for k in case.outputs}))
    return result


def same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit for bit: dtype, shape and bytes (a NaN equals only the same NaN, -0.0 is not 0.0)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == \
        np.ascontiguousarray(b).tobytes()


@dataclass(frozen=True)
class CarryCheck:
    """One carried tensor of a chained case: its stored input against the golden output it is carried from."""

    case: str
    input: str
    after: str
    output: str
    problem: str = ""  # empty when they are equal bit for bit

    @property
    def ok(self) -> bool:
        return not self.problem

    def summary(self) -> str:
        what = f"{self.case}: input {self.input!r} carried from {self.after}'s output {self.output!r}"
        return f"{what}: {self.problem}" if self.problem else f"{what}: bit-identical"


def carry_mismatches(cases: Sequence[GoldenCase]) -> list[CarryCheck]:
    """Every carried tensor of every chained case, checked (the failing ones have a ``problem``): the stored input
    must equal the stored output of the ``after`` case exactly (dtype, shape, bytes)."""
    by_name = {c.name: c for c in cases}
    checks = []
    for case in cases:
        chain = case.chain or {}
        for dst, src in (chain.get("carry") or {}).items():
            after = by_name.get(chain["after"])
            got = case.inputs.get(dst)
            want = None if after is None else after.outputs.get(src)
            if after is None:
                problem = f"no case {chain['after']!r} to carry from"
            elif want is None:
                problem = f"case {after.name!r} stores no output {src!r}, so the carry cannot be checked"
            elif got is None:
                problem = f"the case stores no input {dst!r}"
            else:
                problem = _difference(np.asarray(got), np.asarray(want))
            checks.append(CarryCheck(case.name, dst, chain["after"], src, problem))
    return checks


def _difference(got: np.ndarray, want: np.ndarray) -> str:
    if got.dtype != want.dtype:
        return f"dtype {got.dtype} != {want.dtype}"
    if got.shape != want.shape:
        return f"shape {list(got.shape)} != {list(want.shape)}"
    if same_bytes(got, want):
        return ""  # (so the arrays are not empty below)
    with np.errstate(invalid="ignore"):
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    differ = np.ascontiguousarray(got).view(np.uint8).reshape(got.size, -1) != \
        np.ascontiguousarray(want).view(np.uint8).reshape(want.size, -1)
    n = int(differ.any(axis=1).sum())  # elements whose bytes differ (-0.0 vs 0.0 and NaN payloads included)
    worst = float(np.nanmax(diff)) if np.isfinite(diff).any() else float("nan")
    return f"differs in {n} of {got.size} elements, max |diff| {worst:.3g}"


def write_pipeline_goldens(root: Path, goldens: Sequence[Any]) -> dict[str, Any]:
    """The manifest's ``pipeline`` section for end-to-end goldens (``runtime.pipeline.PipelineGolden``), written."""
    entries = []
    for golden in goldens:
        base = f"{PIPELINE_GOLDEN_DIR}/{golden.name}"
        entries.append({
            "name": golden.name, "description": golden.description, "settings": dict(golden.settings),
            "inputs": [write_array(root, f"{base}/in.{k}.npy", k, v) for k, v in golden.inputs.items()],
            "outputs": [write_array(root, f"{base}/out.{k}.npy", k, v) for k, v in golden.outputs.items()],
            "tolerances": [{"output": k, **v.to_json()} for k, v in golden.tolerances.items()],
        })
    return {"goldens": entries}
