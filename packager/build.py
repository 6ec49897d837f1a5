"""``python -m packager build``: source -> verified bundle folder, atomically and deterministically.

Stages per graph: export (trace or take the shipped graph, rewrite) -> save -> check (onnxruntime vs reference
goldens) -> convert (precision policy: the shipped variant, its Sentis-view goldens and its measured cost vs the fp32
reference; docs/precision.md) -> golden (write .npy) ; then package (manifest, package.json, README).
Everything is written into a temporary sibling folder that is renamed onto ``--out`` only after success; an error,
Ctrl-C or SIGTERM removes it and leaves an existing bundle untouched.
"""
from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import onnx

from packager import GENERATOR_NAME, __version__, preflight, registry, synth
from packager import precision as precision_policy
from packager.checkpoint import Source
from packager.component import ComponentBuild, GoldenCase, GraphDef
from packager.errors import PackagerError
from packager.stages import check as check_stage
from packager.stages import convert as convert_stage
from packager.stages import golden as golden_stage
from packager.sentis_rules import DEFAULT_OPSET
from packager.sentis_rules import MANIFEST_TARGETS as TARGETS
from packager.stages.export import export_graph
from packager.stages.package import MODELS_DIR, save_model, write_bundle_files


@dataclass
class BuildOptions:
    out: Path
    source: Source
    components: list[str] = field(default_factory=registry.names)
    target: str = "ie-2.4"
    opset: int = DEFAULT_OPSET
    force: bool = False
    precision: str | Path | precision_policy.PrecisionPlan = "recommended"  # a policy name or JSON file, or a plan
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)


@dataclass
class BuildSummary:
    out: Path
    graphs: list[tuple[str, str, int]]  # component, graph, bytes
    total_bytes: int
    seconds: float


def _bundle_name(source: Source) -> str:
    if source.is_preset:
        return f"cosyvoice3-{source.preset}"
    base = "".join(c if c.isalnum() else "-" for c in source.checkpoint.name.lower()).strip("-")
    return base or "cosyvoice3"


@contextlib.contextmanager
def _single_threaded_torch() -> Iterator[None]:
    """Reference computations (and the tiny preset's BatchNorm statistics) depend on torch's thread count through
    the order of its parallel reductions; one thread makes a bundle byte-identical on every machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Make SIGTERM (kill) unwind like Ctrl-C so the temporary folder is removed."""
    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler) if hasattr(signal, "SIGTERM") else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _remove_stale_temps(out: Path) -> None:
    """Temporary siblings of a build killed with SIGKILL (no cleanup possible) are removed by the next build."""
    for p in out.parent.glob(f".{out.name}.tmp-*"):
        pid = p.name.rsplit("-", 1)[-1]
        alive = pid.isdigit() and Path(f"/proc/{pid}").exists() and int(pid) != os.getpid()
        if not alive:
            shutil.rmtree(p, ignore_errors=True)


def _check_out(opts: BuildOptions) -> None:
    out = opts.out
    if out.exists() or out.is_symlink():
        if not opts.force:
            raise PackagerError("already exists; pass --force to replace it after a successful build",
                                file=str(out))
        if not out.is_dir() or out.is_symlink():
            raise PackagerError("exists and is not a folder; refusing to replace it", file=str(out))
        if any(out.iterdir()) and not (out / "manifest.json").is_file():
            raise PackagerError("exists and is not a bundle (no manifest.json); refusing to replace it",
                                file=str(out))
    if not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)


def _build_graph(tmp: Path, comp: str, g: GraphDef, opts: BuildOptions) -> dict[str, Any]:
    log = opts.log
    t0 = time.perf_counter()
    model = export_graph(g, opts.opset)
    log(f"  [{comp}] {g.name}: exported ({len(model.graph.node)} nodes, {time.perf_counter() - t0:.1f} s)")
    entry = save_model(tmp, g.name, model, precision="fp32")
    _preflight(tmp / entry["file"], g.name, opts)
    t1 = time.perf_counter()
    cases = g.cases()
    for case in cases:
        check_stage.validate_inputs(g.name, g.inputs, case.inputs, where=f"golden case {case.name}")
    missing = [s.name for s in g.outputs if s.name not in g.tolerances]
    if missing:
        raise PackagerError("no tolerance declared for outputs " + ", ".join(missing), key=g.name)
    tolerances = {s.name: g.tolerances[s.name].to_json() for s in g.outputs}
    results = check_stage.run_cases(tmp / entry["file"], [s.name for s in g.outputs], tolerances, cases)
    check_stage.require_pass(g.name, results)
    worst = check_stage.measured(results)
    log(f"  [{comp}] {g.name}: {len(cases)} golden cases reproduced by onnxruntime "
        f"({time.perf_counter() - t1:.1f} s): " + ", ".join(f"{m['output']} max_abs={m['max_abs']:.2g}" for m in worst))
    entry.update({
        "name": g.name,
        "inputs": [s.to_json() for s in g.inputs],
        "outputs": [s.to_json() for s in g.outputs],
        "tolerances": [{"output": k, **v} for k, v in tolerances.items()],
        "goldens": [golden_stage.write_case(tmp, comp, g.name, c) for c in cases],
        "measured": worst,
        "timeout_ms": int(g.timeout_ms),
    })
    if g.description:
        entry["description"] = g.description
    policy = opts.precision.for_component(comp)
    if policy.precision != "fp32":
        entry.update(_convert_graph(tmp, comp, g, model, policy, cases, tolerances, entry, opts))
        gc.collect()  # the conversion's model copies are large at full size; free them before the next graph
        if entry.get("sentis_importable", True):
            # the shipped variant, not only its fp32 source, for every target
            _preflight(tmp / entry["file"], g.name, opts, tuple(TARGETS))
    return {k: entry[k] for k in ("name", "description", "file", "sha256", "bytes", "external_data", "opset",
                                  "precision", "unity_quantization", "sentis_importable", "inputs", "outputs",
                                  "tolerances", "goldens", "measured", "precision_cost", "timeout_ms") if k in entry}


def _convert_graph(tmp: Path, comp: str, g: GraphDef, model: onnx.ModelProto, policy, cases, tolerances,
                   fp32_entry: dict[str, Any], opts: BuildOptions) -> dict[str, Any]:
    """Replace the checked fp32 graph by the policy's variant: goldens = onnxruntime on the variant's Sentis view
    (what Unity computes), checked again from the written file; cost = that view vs the fp32 reference goldens."""
    t0 = time.perf_counter()
    conv = convert_stage.convert(model, policy, g.keep_float32, cases)
    for o in conv.overflows:
        opts.log(f"  [{comp}] {g.name}: fp16 overflow: {o.tensor} reaches |x| = {o.max_abs:.3g} > 65504; "
                 f"kept float32: {', '.join(o.nodes)}")
    target_outputs = convert_stage.outputs_of(conv.view or conv.model, cases)
    conv.view = None  # a full-size view is GBs; the re-check below rebuilds it from the written file
    variant = [GoldenCase(c.name, c.inputs, {k: target_outputs[i][k] for k in c.outputs}, c.chain, c.description)
               for i, c in enumerate(cases)]
    var_tol = {k: convert_stage.variant_tolerance(v) for k, v in tolerances.items()}
    entry = save_model(tmp, g.name, conv.model, precision=conv.precision, unity_quantization=conv.unity_quantization)
    results = check_stage.run_cases(convert_stage.target_model(tmp / entry["file"], entry),
                                    [s.name for s in g.outputs], var_tol, variant)
    check_stage.require_pass(g.name, results)
    cost = convert_stage.cost(model, conv, cases, target_outputs, tolerances, fp32_entry["bytes"], entry["bytes"])
    sentis = {m["output"]: m for m in cost["error"]}
    opts.log(f"  [{comp}] {g.name}: {conv.precision} (unity_quantization {conv.unity_quantization}) "
             f"{fp32_entry['bytes']} -> {entry['bytes']} bytes ({time.perf_counter() - t0:.1f} s); vs fp32 reference: "
             + ", ".join(f"{k} max_abs={m['max_abs']:.2g} sqnr={m['sqnr_db']:.1f} dB" for k, m in sentis.items()))
    entry.update({
        "tolerances": [{"output": k, **v} for k, v in var_tol.items()],
        "goldens": [golden_stage.write_case(tmp, comp, g.name, c) for c in variant],
        "precision_cost": cost,
    })
    return entry


def _preflight(path: Path, graph: str, opts: BuildOptions, targets: tuple[str, ...] = ()) -> None:
    """Sentis pre-flight rules on the saved file (external-data layout included) for the build target, or for
    ``targets``; an error fails the build."""
    for target in targets or (opts.target,):
        findings = preflight.check_file(path, target, graph)
        bad = preflight.errors(findings)
        if bad:
            raise PackagerError(f"fails the Sentis pre-flight check for {target}:\n"
                                + preflight.format_findings(bad, limit=None), key=graph)
        if findings:
            opts.log(f"  [{graph}] pre-flight: {len(findings)} warning(s) for {target}: "
                     + "; ".join(sorted({f.rule for f in findings})))


def _build_component(tmp: Path, name: str, opts: BuildOptions) -> dict[str, Any]:
    comp = registry.get(name)
    t0 = time.perf_counter()
    built: ComponentBuild = comp.build(opts.source)
    opts.source.release_weights()  # the component's model holds its own copy of the weights now
    opts.log(f"[{name}] loaded ({time.perf_counter() - t0:.1f} s)")
    graphs = [_build_graph(tmp, name, g, opts) for g in built.graphs]
    data = [golden_stage.write_array(tmp, f"{golden_stage.DATA_DIR}/{d.name}.npy.bytes", d.name,
                                     np.ascontiguousarray(d.array), d.description) for d in built.data]
    entry = {"name": name, "description": comp.description, "graphs": graphs,
             "constants": json.loads(json.dumps(built.constants)), "data": data}
    if not comp.description:
        del entry["description"]
    return entry


def build(opts: BuildOptions) -> BuildSummary:
    if opts.target not in TARGETS:
        raise PackagerError(f"unknown target {opts.target!r}", key="--target", expected=", ".join(TARGETS))
    components = [registry.get(n).name for n in opts.components]  # validates names early
    if not isinstance(opts.precision, precision_policy.PrecisionPlan):
        opts.precision = precision_policy.plan(opts.precision, components)
    out = opts.out.resolve() if not opts.out.is_absolute() else opts.out
    opts.out = out
    _check_out(opts)
    _remove_stale_temps(out)
    start = time.perf_counter()
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with _sigterm_as_interrupt(), _single_threaded_torch():
            entries = [_build_component(tmp, n, opts) for n in components]
            manifest = {
                "format_version": 1,
                "generator": {"name": GENERATOR_NAME, "version": __version__},
                "bundle": {"name": _bundle_name(opts.source),
                           "package": "com.cosyvoice3.bundle." + _bundle_name(opts.source).removeprefix("cosyvoice3-")},
                "source": opts.source.describe(),
                "target": {"runtime": opts.target, **TARGETS[opts.target]},
                "precision_policy": {"name": opts.precision.name, "components": {
                    n: opts.precision.for_component(n).to_json() for n in components}},
                "components": entries,
            }
            pipeline = synth.pipeline_goldens(tmp, manifest, opts.source.seed, golden_stage.write_array)
            if pipeline:
                manifest["pipeline"] = pipeline
                opts.log("[pipeline] end-to-end golden: tts_greedy")
            write_bundle_files(tmp, manifest)
            _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    graphs = [(c["name"], g["name"], g["bytes"]) for c in entries for g in c["graphs"]]
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return BuildSummary(out, graphs, total, time.perf_counter() - start)


def _swap_into_place(tmp: Path, out: Path) -> None:
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
