"""``python -m packager build``: source -> verified bundle folder, atomically and deterministically.

One pass per graph (docs/bundle.md "Build pipeline"). Per component: load; for each graph, the torch-side stages
(export, the reference goldens) with the fp32 graph parked in a scratch folder with external data; the torch model
released; then for each graph: check (onnxruntime on the scratch file vs the reference goldens) -> convert
(precision policy, in memory) -> write (the graph file, once, as it ships) -> goldens (the fp32 reference, or
onnxruntime on the Sentis view of the written file; docs/precision.md) -> pre-flight of the written file; then the
end-to-end golden and package (manifest, package.json, README). Progress goes to ``BuildOptions.log``: a
``packager.ui.progress.Progress`` shows live steps and heartbeats, any other callable gets the result lines.
Everything is written into a temporary sibling folder that is renamed onto ``--out`` only after success; an error,
Ctrl-C or SIGTERM removes it and leaves an existing bundle untouched.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import shutil
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import onnx

from packager import GENERATOR_NAME, __version__
from packager.sentis import preflight
from packager.build import registry
from packager.contract import staging
from packager.contract import manifest as B
from packager.runtime import pipeline as synth
from packager.build import precision as precision_policy
from packager.build.checkpoint import Source
from packager.build.component import ComponentBuild, GoldenCase, GraphDef
from packager.contract.errors import PackagerError
from packager.build.stages import check as check_stage
from packager.build.stages import convert as convert_stage
from packager.build.stages import golden as golden_stage
from packager.sentis.rules import DEFAULT_OPSET
from packager.sentis.rules import MANIFEST_TARGETS as TARGETS
from packager.build.stages.export import export_graph
from packager.onnx.external import load_external_copy, save_external_copy
from packager.onnx.session import run_onnx, session
from packager.sentis.numerics import unity_weight_bytes
from packager.ui.progress import step_of as _step
from packager.build.stages.package import fp32_file_bytes, needs_weights_to_save, save_model, write_bundle_files


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


SCRATCH_DIR = ".scratch"  # inside the temporary bundle folder: fp32 graphs between their stages; removed before packaging


def _release_memory() -> None:
    """Collect, then hand freed heap pages back to the OS (glibc ``malloc_trim``): after a GB-sized proto is freed
    its pages otherwise stay in the process, and the next graph's peak stacks on top of them."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


@dataclass
class BuildSummary:
    out: Path
    graphs: list[tuple[str, str, int]]  # component, graph, bytes
    total_bytes: int
    seconds: float


def _bundle_name(source: Source) -> str:
    if source.is_preset:
        return f"cosyvoice3-{source.preset}"
    base = "".join(c if c.isalnum() else "-" for c in source.name.lower()).strip("-")
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
    """Make SIGTERM (kill) unwind like Ctrl-C so the temporary folder is removed. A KeyboardInterrupt raised while
    Python runs a finalizer (e.g. during gc.collect) is printed and swallowed, so the signal is also remembered and
    raised again when the work ends: an interrupted build never reaches the final rename."""
    received: list[int] = []

    def handler(signum, frame):  # noqa: ARG001
        received.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler) if hasattr(signal, "SIGTERM") else None
    try:
        yield
        if received:
            raise KeyboardInterrupt(f"signal {received[0]}")
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


@dataclass
class _Exported:
    """A graph after its torch-side stages (export, reference cases): what the later stages need, without torch.
    The fp32 graph waits in the build's scratch folder with external data (its weights are not held in RAM)."""

    g: GraphDef  # its module/example inputs/cases callable are dropped once exported
    cases: list[GoldenCase]
    tolerances: dict[str, dict[str, Any]]
    scratch: Path


def _export_graph(scratch: Path, comp: str, g: GraphDef, opts: BuildOptions) -> _Exported:
    """Export (or take the shipped graph), compute the reference goldens with the component's torch model, park the
    fp32 graph in ``scratch``."""
    prog, label = opts.log, f"[{comp}] {g.name}"
    t0 = time.perf_counter()
    with _step(prog, f"{label}: export"):
        model = export_graph(g, opts.opset, workdir=scratch)
        n_nodes = len(model.graph.node)
        path = save_external_copy(model, scratch / f"{g.name}.onnx")
        del model
        _release_memory()
    prog(f"  {label}: exported ({n_nodes} nodes, {time.perf_counter() - t0:.1f} s)")
    with _step(prog, f"{label}: reference goldens"):
        cases = g.cases()
    for case in cases:
        check_stage.validate_inputs(g.name, g.inputs, case.inputs, where=f"golden case {case.name}")
    missing = [s.name for s in g.outputs if s.name not in g.tolerances]
    if missing:
        raise PackagerError("no tolerance declared for outputs " + ", ".join(missing), key=g.name)
    tolerances = {s.name: g.tolerances[s.name].to_json() for s in g.outputs}
    g = dataclasses.replace(g, module=None, example_inputs=None, onnx_model=None, rewrite=None, cases=lambda: [])
    return _Exported(g, cases, tolerances, path)


def _check(x: _Exported, tolerances, cases, label: str, log: Callable[[str], None]):
    """The fp32 scratch graph on onnxruntime vs the torch reference goldens; a progress step on ``log`` (a
    non-Progress log, e.g. a no-op, shows none)."""
    with _step(log, f"{label}: {len(cases)} golden cases on onnxruntime", total=len(cases), unit="cases") as st:
        results = check_stage.run_cases(x.scratch, [s.name for s in x.g.outputs], tolerances, cases,
                                        on_case=lambda: st.advance(1))
    check_stage.require_pass(x.g.name, results)
    return check_stage.measured(results)


def _report_check(label: str, cases, worst, t1: float, prog) -> None:
    prog(f"  {label}: {len(cases)} golden cases reproduced by onnxruntime ({time.perf_counter() - t1:.1f} s): "
         + ", ".join(f"{m['output']} max_abs={m['max_abs']:.2g}" for m in worst))


def _finish_graph(tmp: Path, comp: str, x: _Exported, opts: BuildOptions) -> dict[str, Any]:
    """Check -> convert -> goldens -> write, once: the bundle's graph file is written exactly once, as it ships."""
    g = x.g
    requested = opts.precision.for_component(comp).for_graph(g.name)
    policy = convert_stage.graph_policy(requested, g.dsp_graph)  # a DSP graph is fp32 under every policy
    if policy.precision == "fp32":
        entry, goldens, worst = _ship_fp32(tmp, comp, x, requested.precision, opts)
        tolerances = x.tolerances
    else:
        entry, goldens, tolerances, worst = _ship_converted(tmp, comp, x, policy, opts)
    x.scratch.unlink()
    x.scratch.with_name(x.scratch.name + ".data").unlink(missing_ok=True)
    _release_memory()  # full-size protos and sessions are GBs: free them before the next graph
    entry.update({
        "name": g.name,
        "inputs": [s.to_json() for s in g.inputs],
        "outputs": [s.to_json() for s in g.outputs],
        "tolerances": [{"output": k, **v} for k, v in tolerances.items()],
        "goldens": goldens,
        "measured": worst,
        "timeout_ms": int(g.timeout_ms),
    })
    if g.description:
        entry["description"] = g.description
    return {k: entry[k] for k in ("name", "description", "file", "sha256", "bytes", "external_data", "opset",
                                  "precision", "unity_quantization", "sentis_importable", "inputs", "outputs",
                                  "tolerances", "goldens", "measured", "precision_cost", "timeout_ms") if k in entry}


def _ship_fp32(tmp: Path, comp: str, x: _Exported, requested: str, opts: BuildOptions):
    """(entry, goldens, measured) of the fp32 graph as it ships: checked against the reference, written from the
    scratch file, its goldens the reference's. ``requested``: the policy's precision (a DSP graph ships fp32 under any,
    and says so in its precision_cost)."""
    g, cases, prog = x.g, x.cases, opts.log
    label = f"[{comp}] {g.name}"
    t1 = time.perf_counter()
    worst = _check(x, x.tolerances, cases, label, prog)  # the fp32 graph vs the torch reference
    _report_check(label, cases, worst, t1, prog)
    model = onnx.load(str(x.scratch), load_external_data=False)  # the weights are streamed from the scratch file
    convert_stage.dsp_constants(model, g.dsp_constants, g.name)  # a stale declaration fails under any policy
    kept_dsp = None
    if g.dsp_graph and requested != "fp32":
        kept_dsp = convert_stage.dsp_record(convert_stage.all_float_constants(model), requested, "fp32",
                                            "none", (), whole_graph=True)
        unity_fp32 = unity_weight_bytes(model, "none")
        prog(f"  {label}: fp32 (unity_quantization none) instead of {requested}: a DSP graph, every "
             "constant an exact DSP number (docs/precision.md \"DSP constants\")")
    with _step(prog, f"{label}: write"):
        if needs_weights_to_save(model):
            model = load_external_copy(x.scratch)
            entry = save_model(tmp, g.name, model, precision="fp32")
        else:
            entry = save_model(tmp, g.name, model, precision="fp32", data_dir=x.scratch.parent)
    del model
    if kept_dsp is not None:  # the policy asked for less: say what shipped instead, and why
        entry["precision_cost"] = {"bytes_fp32": entry["bytes"], "bytes": entry["bytes"],
                                   "unity_weight_bytes_fp32": unity_fp32, "unity_weight_bytes": unity_fp32,
                                   "error": worst, "exact_dsp": kept_dsp}
    goldens = golden_stage.write_cases(tmp, comp, g.name, cases)  # the reference, its chains checked
    _preflight(tmp / entry["file"], g.name, opts)
    return entry, goldens, worst


def _ship_converted(tmp: Path, comp: str, x: _Exported, policy, opts: BuildOptions):
    """(entry, goldens, tolerances, measured) of the policy's variant. The check of the fp32 graph runs on the other
    core while the conversion starts (its overflow probe is a single-threaded onnxruntime session too); its failure is
    the error reported, whatever the conversion did."""
    label, cases, prog = f"[{comp}] {x.g.name}", x.cases, opts.log
    t1 = time.perf_counter()
    with ThreadPoolExecutor(1) as pool:
        checked = pool.submit(_check, x, x.tolerances, cases, label, lambda _: None)  # no second live step
        try:
            entry, goldens, tolerances = _convert_graph(tmp, comp, x, policy, opts, before_write=lambda: (
                _report_check(label, cases, checked.result(), t1, prog)))
        except BaseException:
            checked.result()  # raises the check's error, if it failed
            raise
        worst = checked.result()
    if entry.get("sentis_importable", True):  # the shipped variant, for every target
        _preflight(tmp / entry["file"], x.g.name, opts, tuple(TARGETS))
    return entry, goldens, tolerances, worst


def _convert_graph(tmp: Path, comp: str, x: _Exported, policy, opts: BuildOptions,
                   before_write: Callable[[], None] = lambda: None):
    """(entry, goldens, tolerances) of the policy's variant: converted in memory, written once, its goldens computed
    by onnxruntime on the Sentis view of the written file (what Unity computes; a chained case's carried inputs are
    the view's outputs of the previous step, ``golden_stage.carried_goldens``), its cost against the fp32
    reference goldens (every case on the reference inputs). Each model is released as soon as what is measured on it is known. ``before_write`` is
    called once the variant is made, before anything is written (the build waits there for the fp32 check)."""
    g, cases, tolerances, prog = x.g, x.cases, x.tolerances, opts.log
    label = f"[{comp}] {g.name}"
    t0 = time.perf_counter()
    structure = onnx.load(str(x.scratch), load_external_data=False)  # sizes only: no weight is read
    if needs_weights_to_save(structure):  # over INLINE_LIMIT: the size is that of an external-data save
        structure = load_external_copy(x.scratch)
    bytes_fp32, unity_fp32 = fp32_file_bytes(structure), unity_weight_bytes(structure, "none")
    del structure
    with _step(prog, f"{label}: convert to {policy.precision}"):
        conv = convert_stage.convert(None, policy, g.keep_float32, cases, fp32_path=x.scratch, with_view=False,
                                     dsp=g.dsp_constants, graph=g.name)
    before_write()
    _report_kept_float32(prog, label, conv.overflows)
    if conv.exact_dsp:
        rounded = conv.dsp_rounded_by_unity
        prog(f"  {label}: {len(conv.exact_dsp['constants'])} DSP constant(s) kept bit-exact float32"
             + (f"; unity_quantization none instead of {policy.unity_quantization}: ModelQuantizer would round "
                f"{len(rounded)} of them" if rounded and policy.unity_quantization != "none" else ""))
    with _step(prog, f"{label}: write"):
        entry = save_model(tmp, g.name, conv.model, precision=conv.precision,  # fp16: rounded from the scratch
                           unity_quantization=conv.unity_quantization, data_dir=x.scratch.parent)
    unity_shipped = None if conv.precision == "int8" else unity_weight_bytes(conv.model, conv.unity_quantization)
    conv.model = None
    _release_memory()
    # onnxruntime's true fp16 compute of the file (a cost figure for non-Sentis users) runs on the other core while
    # the Sentis view's goldens are computed: two single-threaded sessions, so the same outputs as one after the other
    with _step(prog, f"{label}: goldens on the Sentis view" + (" (and onnxruntime fp16 compute, in parallel)"
                                                               if conv.precision == "fp16" else ""),
               total=len(cases) + golden_stage.chain_runs(cases), unit="cases") as st, ThreadPoolExecutor(1) as pool:
        fp16_runs = pool.submit(convert_stage.fp16_cost_outputs, str(tmp / entry["file"]), cases) \
            if conv.precision == "fp16" else None
        view = convert_stage.target_model(tmp / entry["file"], entry)  # usually the file's structure (OnDisk)
        scratch_view = None
        if isinstance(view, onnx.ModelProto):  # a materialized view (uint8) goes through a scratch file: its proto
            scratch_view = save_external_copy(view, x.scratch.with_name(x.scratch.stem + ".view.onnx"))
            view = str(scratch_view)  # is released before the session is made
            _release_memory()
        sess = session(view)
        target_outputs = []
        for c in cases:
            target_outputs.append(run_onnx(sess, c.inputs))
            st.advance(1)
        # a chained case's carried inputs are this graph's own outputs of the previous step (what a host carrying
        # them feeds), its outputs run on those; target_outputs (on the reference inputs) stay for the cost
        variant = golden_stage.carried_goldens(cases, target_outputs, lambda inputs: run_onnx(sess, inputs),
                                               on_case=lambda: st.advance(1))
        del sess, view
        fp16_outputs = fp16_runs.result() if fp16_runs is not None else None
    if scratch_view is not None:
        scratch_view.unlink()
        scratch_view.with_name(scratch_view.name + ".data").unlink(missing_ok=True)
    var_tol = {k: convert_stage.variant_tolerance(v) for k, v in tolerances.items()}
    with _step(prog, f"{label}: precision cost"):
        cost = convert_stage.cost(None, conv, cases, target_outputs, tolerances, bytes_fp32, entry["bytes"],
                                  unity_bytes_fp32=unity_fp32, unity_bytes=unity_shipped, shipped=tmp / entry["file"],
                                  fp16_outputs=fp16_outputs)
    sentis = {m["output"]: m for m in cost["error"]}
    prog(f"  {label}: {conv.precision} (unity_quantization {conv.unity_quantization}) "
         f"{bytes_fp32} -> {entry['bytes']} bytes ({time.perf_counter() - t0:.1f} s); vs fp32 reference: "
         + ", ".join(f"{k} max_abs={m['max_abs']:.2g} sqnr={m['sqnr_db']:.1f} dB" for k, m in sentis.items()))
    entry["precision_cost"] = cost
    return entry, golden_stage.write_cases(tmp, comp, g.name, variant), var_tol


MASK_FILL = 1e8  # values this large are mask fills (-1e9 where attention must not look), not activations


def _report_kept_float32(prog: Callable[[str], None], label: str, overflows: list[Any]) -> None:
    """One info line for what the fp16 conversion kept float32 because it does not fit fp16 (max 65504): the expected
    mask fills together, anything else by name (all of them are in the manifest: precision_cost.overflow)."""
    masks = [o for o in overflows if o.max_abs >= MASK_FILL]
    if masks:
        nodes = {n for o in masks for n in o.nodes}
        prog(f"  {label}: kept float32: {len(masks)} mask fill tensor(s) and {len(nodes)} node(s) around them "
             f"(|x| up to {max(o.max_abs for o in masks):.0e}; expected: -1e9 masks do not fit fp16, whose largest "
             "value is 65504)")
    for o in overflows:
        if o.max_abs < MASK_FILL:
            prog(f"  {label}: kept float32: {o.tensor} reaches |x| = {o.max_abs:.3g}, more than fp16 holds (65504); "
                 f"{len(o.nodes)} node(s): {', '.join(o.nodes)}")


def _preflight(path: Path, graph: str, opts: BuildOptions, targets: tuple[str, ...] = ()) -> None:
    """Sentis pre-flight rules on the saved file (external-data layout included) for the build target, or for
    ``targets``; an error fails the build."""
    with _step(opts.log, f"{graph}: Sentis pre-flight"):
        per_target = preflight.check_file_for(path, targets or (opts.target,), graph)
    for target, findings in per_target.items():
        bad = preflight.errors(findings)
        if bad:
            raise PackagerError(f"fails the Sentis pre-flight check for {target}:\n"
                                + preflight.format_findings(bad, limit=None), key=graph)
        if findings:
            opts.log(f"  [{graph}] pre-flight: {len(findings)} warning(s) for {target}: "
                     + "; ".join(sorted({f.rule for f in findings})))


DISK_MARGIN = 64 << 20


def _check_disk(opts: BuildOptions, components: list[str]) -> None:
    """Refuse to start when the bundle cannot fit: a checkpoint's weights (the fp32 bundle's size, an upper bound
    for reduced precision) plus the scratch copy of the largest component's fp32 graphs, before anything is written."""
    if opts.source.is_preset:
        weights = [0]
    else:
        weights = []
        for name in components:
            files = [opts.source.checkpoint / f for f in registry.get(name).checkpoint_files]
            weights.append(sum(f.stat().st_size for f in files if f.is_file() and f.suffix in (".pt", ".onnx")))
    needed = sum(weights) + max(weights) + DISK_MARGIN
    free = shutil.disk_usage(opts.out.parent).free
    if free < needed:
        raise PackagerError("not enough free disk space for the bundle", file=str(opts.out.parent),
                            expected=f"{needed:,} bytes free ({needed / 1e9:.2f} GB: the weights, a scratch copy "
                                     "of the largest component and a margin)",
                            found=f"{free:,} bytes free")


def _build_component(tmp: Path, name: str, opts: BuildOptions) -> dict[str, Any]:
    """Torch-side stages for every graph of the component (they share its model), the model released, then the
    rest of the stages graph by graph."""
    comp = registry.get(name)
    t0 = time.perf_counter()
    with _step(opts.log, f"[{name}] load"):
        built: ComponentBuild = comp.build(opts.source)
    opts.source.release_weights()  # the component's model holds its own copy of the weights now
    _release_memory()
    opts.log(f"[{name}] loaded ({time.perf_counter() - t0:.1f} s)")
    precision_policy.check_graph_names(opts.precision.for_component(name), name, [g.name for g in built.graphs],
                                       opts.precision.name)
    scratch = tmp / SCRATCH_DIR
    scratch.mkdir(exist_ok=True)
    exported = [_export_graph(scratch, name, g, opts) for g in built.graphs]
    built.graphs = []
    _release_memory()  # the torch model: only the exported graphs' closures held it
    graphs = [_finish_graph(tmp, name, x, opts) for x in exported]
    data = [golden_stage.write_array(tmp, f"{B.DATA_DIR}/{d.name}.npy.bytes", d.name,
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
    opts.source.check_files(f for n in components for f in registry.get(n).checkpoint_files)  # all missing at once
    if not isinstance(opts.precision, precision_policy.PrecisionPlan):
        opts.precision = precision_policy.plan(opts.precision, registry.recommended_precisions(components))
    out = opts.out.resolve() if not opts.out.is_absolute() else opts.out
    opts.out = out
    _check_out(opts)
    _remove_stale_temps(out)
    _check_disk(opts, components)
    start = time.perf_counter()
    with staging.staged_folder(out) as tmp, _sigterm_as_interrupt(), _single_threaded_torch():
        with _step(opts.log, "sha256 of the checkpoint files (the model's identity)"):
            source = opts.source.describe()
        entries = [_build_component(tmp, n, opts) for n in components]
        shutil.rmtree(tmp / SCRATCH_DIR, ignore_errors=True)
        manifest = {
            "format_version": B.FORMAT_VERSION,
            "generator": {"name": GENERATOR_NAME, "version": __version__},
            "bundle": {"name": _bundle_name(opts.source),
                       "package": "com.cosyvoice3.bundle." + _bundle_name(opts.source).removeprefix("cosyvoice3-")},
            "source": source,
            "target": {"runtime": opts.target, **TARGETS[opts.target]},
            "precision_policy": {"name": opts.precision.name, "components": {
                n: opts.precision.for_component(n).to_json() for n in components}},
            "components": entries,
        }
        with _step(opts.log, "[pipeline] end-to-end golden (tts over the bundle's graphs)"):
            if synth.can_synthesize(manifest):
                pipe = synth.Pipeline.open(tmp, manifest=manifest, one_component_at_a_time=True)
                golden = synth.tts_golden(pipe, opts.source.seed)
                del pipe
                manifest["pipeline"] = golden_stage.write_pipeline_goldens(tmp, [golden])
                opts.log(f"[pipeline] end-to-end golden: {golden.name}")
        write_bundle_files(tmp, manifest)
    graphs = [(c["name"], g["name"], g["bytes"]) for c in entries for g in c["graphs"]]
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return BuildSummary(out, graphs, total, time.perf_counter() - start)
