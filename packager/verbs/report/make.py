"""``python -m packager report``: the precision question answered with numbers, pictures and sound.

One bundle is built per policy (``packager.build.pipeline``, the same code and checks as ``build``); each graph is
measured against the FP32 bundle's goldens; each policy speaks the same text with the same voice and seed
(information), and is fed FP32's input part by part: its LLM FP32's tokens (teacher forcing), its flow FP32's tokens,
its vocoder FP32's mel (the gates). Everything lands in a self-contained folder: ``report.json``
(schemas/report.schema.json), ``index.html`` rendered from it, PNG pictures and WAVs. The bundles themselves are
scratch and removed. Nothing is left at ``--out`` unless the whole report succeeded (docs/precision.md "Report").
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from packager import GENERATOR_NAME, __version__
from packager.contract import manifest as B
from packager.contract import staging
from packager.build.checkpoint import Source
from packager.contract.errors import PackagerError
from packager.ui.progress import step_of as _step
from packager.verbs.report import measure as M

FORMAT = "cosyvoice3-precision-report"
FORMAT_VERSION = 3  # 3: the per-component search (2: teacher-forced LLM, flow and vocoder on FP32's input)
REPORT_FILE = "report.json"
PAGE_FILE = "index.html"
SCHEMA_PATH = B.SCHEMA_DIR / "report.schema.json"
DEFAULT_TEXT = "Hello! This sentence is spoken once per precision policy, so that you can hear what each one costs."


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise PackagerError("exists and is not a folder", file=str(out), key="--out", expected="a new folder")
    if out.exists() and any(out.iterdir()) and not force:
        raise PackagerError("already exists; pass --force to replace it", file=str(out), key="--out")
    parent = out.parent if str(out.parent) else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise PackagerError("cannot be written (no permission to create it)", file=str(out), key="--out",
                            expected=f"a folder under a writable folder ({probe} is not writable)")


def _peak_rss_bytes() -> int:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return int(max(own, kids) * 1024)


def run(args: argparse.Namespace) -> int:
    """``packager report`` (options: packager/cli.py)."""
    from packager.ui.extras import require
    from packager.ui.progress import Progress

    require("matplotlib", "report")  # the pictures: say so before an hour of builds, not after
    policies = M.parse_policies(args.policies)
    if args.text is not None and args.voice is None:
        raise PackagerError("--text needs --voice (the voice it is spoken in)", key="--text",
                            expected="--voice NAME.voice, made by `python -m packager voice`")
    if args.text is not None and not args.text.strip():
        raise PackagerError("empty text", key="--text", expected="a sentence to speak")
    voice = None
    if args.voice is not None:
        from packager.frontend import voicepack

        voice = voicepack.load(args.voice)
    out = args.out.resolve()
    _check_out(out, args.force)
    from packager.build import registry
    from packager.build.checkpoint import source_from_args

    source_args, source_cli = source_from_args(
        args.checkpoint, args.revision, args.preset, args.seed,
        lambda: [f for n in registry.names() for f in registry.get(n).checkpoint_files], args.quiet)
    if voice is not None and "preset" in source_args:  # a checkpoint's identity needs its files hashed: after the build
        want = Source(**source_args).describe()["model_id"]
        if voice.model_id != want:
            raise PackagerError(f"this voice pack was made for another model (model_id {voice.model_id[:12]}…)",
                                file=str(args.voice), key="model.model_id",
                                expected=f"model_id {want[:12]}… of the {source_args['preset']} preset "
                                         f"(seed {source_args['seed']})")
    progress = Progress("quiet" if args.quiet else args.progress)
    try:
        doc = make_report(out, source_args, policies, voice, args.text, args.seed, args.target,
                          args.threads or os.cpu_count() or 1, progress, source_cli, search=not args.no_search)
    finally:
        progress.close()
    best = doc["recommendation"]["policy"]
    if not args.quiet:
        print(f"report {out}: {len(doc['policies'])} policies in {doc['timing']['seconds']:.0f} s; recommendation: "
              f"{best or 'none'} ({doc['recommendation']['reason']}) -> {out / PAGE_FILE}")
    return 0


def make_report(out: Path, source_args: dict[str, Any], policies: list[str], voice, text: str | None, seed: int,
                target: str, threads: int, log, source_cli: list[str] | None = None,
                search: bool = True) -> dict[str, Any]:
    """Everything, in a temporary sibling of ``out`` that replaces it only at the end. ``source_cli``: the build
    options that name the model as the user gave them (for the page's build command)."""
    with staging.staged_folder(out) as tmp:
        doc = _measure_all(tmp, source_args, policies, voice, text, seed, target, threads, log, source_cli, search)
        _write_outputs(tmp, doc)
    return doc


class _Run:
    """One report run: every policy built and measured against FP32 in turn, then the search's combination."""

    def __init__(self, tmp: Path, source_args, voice, text, seed, target, threads, log, source_cli):
        from packager.build import registry
        from packager.verbs.report import sentis_real

        self.tmp, self.source_args, self.voice, self.text, self.seed = tmp, source_args, voice, text, seed
        self.target, self.threads, self.log, self.source_cli = target, threads, log, source_cli
        self.names = registry.names()
        self.recommended = registry.recommended_precisions(self.names)
        self.work = tmp / ".bundles"
        self.work.mkdir()
        self.results: list[dict[str, Any]] = []
        self.fp32_cases: dict[str, list] = {}
        self.fp32_graphs: dict[str, dict] = {}
        self.ref_utt = None
        self.pieces: list[M.Piece] = []
        self.reference_doc: dict[str, Any] = {}
        self.case = None
        self.source_doc = None
        self.harness = sentis_real.Harness.find(target, self.work, log)

    def measure(self, name: str, plan, title: str) -> None:
        """Build ``plan`` as policy ``name``, measure every graph against FP32, speak, feed FP32's input, gate."""
        from packager.build.pipeline import BuildOptions, build
        from packager.frontend import audio

        log, work, tmp = self.log, self.work, self.tmp
        log(f"[report] {title}: {name} ({M.DESCRIPTIONS[name]})")
        bundle = work / name
        tb = time.perf_counter()
        build(BuildOptions(out=bundle, source=Source(**self.source_args), components=list(self.names),
                           target=self.target, precision=plan, log=log))
        build_s = time.perf_counter() - tb
        manifest = B.open_manifest(bundle)
        if name == M.BASELINE:
            self.source_doc = {k: manifest["source"][k] for k in ("kind", "preset", "seed", "name", "model_id")
                          if k in manifest["source"]}
            if self.voice is not None:
                self.voice.check_model(manifest, bundle)
            else:
                pg = manifest["pipeline"]["goldens"][0]
                self.case = {e["name"]: B.load_array(bundle, e, f"pipeline/{pg['name']}/in") for e in pg["inputs"]}
            for c in manifest["components"]:
                for g in c["graphs"]:
                    self.fp32_graphs[g["name"]] = g
                    self.fp32_cases[g["name"]] = M.golden_cases(bundle, g, f"{c['name']}/{g['name']}")
        comps = []
        with _step(log, f"[report] {name}: measure every graph against FP32",
                   total=sum(len(c["graphs"]) for c in manifest["components"])) as st:
            for c in manifest["components"]:
                graphs = []
                for g in c["graphs"]:
                    graphs.append(M.measure_graph(bundle, c["name"], g, self.fp32_cases[g["name"]],
                                                  self.fp32_graphs[g["name"]],
                                                  self.threads))
                    st.advance()
                # the policy's precision for the component (a DSP-only graph of it may ship fp32 regardless;
                # each graph's own precision is in its entry)
                comps.append({"name": c["name"], "precision": plan.for_component(c["name"]).precision,
                              "graphs": graphs})
        p = M.open_pipeline(bundle, manifest, self.threads)
        with _step(log, f"[report] {name}: speak"):
            text = (self.text or DEFAULT_TEXT) if self.voice is not None else None
            utt = M.synthesize(p, self.voice, text, self.case, self.seed)
        e2e = M.e2e_metrics(utt, self.ref_utt)
        mel = M.log_mel(utt.samples, utt.sample_rate)
        run = None
        if name == M.BASELINE:
            self.ref_utt = utt
            with _step(log, f"[report] {name}: the LLM's choices at every step, the vocoder's sensitivity"):
                self.pieces, sensitivity = M.reference(p, utt, self.seed)
            self.reference_doc = {"pieces": len(self.pieces), "llm_steps": sum(pc.steps for pc in self.pieces),
                             "tokens": int(utt.tokens.size), "vocoder_sensitivity": sensitivity}
        else:
            with _step(log, f"[report] {name}: fed FP32's tokens and mel"):
                run = M.fed_fp32(p, self.pieces, utt.sample_rate)
        del p
        wav = f"{name}.wav"
        audio.write_wav(tmp / wav, utt.samples, utt.sample_rate)
        e2e["wav"] = wav
        e2e["sample_rate"] = utt.sample_rate
        e2e["png"] = _pictures(tmp, name, utt, mel, run, self.ref_utt.mel if run is not None else None)
        entry = {"name": name, "description": M.DESCRIPTIONS[name], "runtime": M.runtime_of(name),
                 "precisions": {c["name"]: c["precision"] for c in comps},
                 "command": build_command(name, plan, self.source_args, self.source_cli, self.target),
                 "build_seconds": M._r(build_s, 4), "components": comps, "e2e": e2e}
        if run is not None:
            st_wav = f"{name}.same-tokens.wav"
            audio.write_wav(tmp / st_wav, run.same_token_audio, utt.sample_rate)
            entry.update({"teacher_forced": run.teacher_forced, "same_tokens": {**run.same_tokens, "wav": st_wav},
                          "same_mel": run.same_mel})
        entry["sentis_real"] = self.harness.measure(name, bundle, manifest)
        entry["totals"] = M.totals(entry)
        entry["gates"] = M.policy_gates(entry, self.target, name == M.BASELINE)
        entry["verdict"] = "pass" if all(g["pass"] for g in entry["gates"]) else "fail"
        self.results.append(entry)
        if run is not None:
            tf, stt = run.teacher_forced, run.same_tokens
            log(f"[report] {name}: {entry['verdict']}; teacher-forced top-1 {tf['top1']} (above margin "
                f"{tf['top1_confident']}), KL {tf['kl_mean']}, flow mel SQNR {stt['flow_mel_sqnr_db']} dB, "
                f"vocoder log-mel correlation {run.same_mel['log_mel_correlation']}")
        else:
            log(f"[report] {name}: {entry['verdict']}")
        shutil.rmtree(bundle)  # GBs at full size: only the measurements stay

    def search(self) -> dict[str, Any] | None:
        """The search over the measured policies, its combination built and measured (again without the per-graph
        choices when those broke a component's gates)."""
        results, recommended, log, tmp, measure = self.results, self.recommended, self.log, self.tmp, self.measure
        found = M.search(results, self.target, recommended)
        if found is not None:
            if found["precisions"] is not None and found["same_as"] is None:
                measure(M.SEARCHED, M.searched_plan(found["precisions"], recommended), "the search's combination")
                verdicts = M.component_verdicts(results[-1], self.target)
                retry = M.without_graphs(found, [c for c, v in verdicts.items() if not v["pass"]])
                if retry is not None:  # a graph below its component's precision broke that component's gates
                    found["tried"] = [{"precisions": found["precisions"], "verdict": results[-1]["verdict"],
                                       "failed": [f for v in verdicts.values() for f in v["failed"]]}]
                    log(f"[report] search: {', '.join(found['tried'][0]['failed'])}: again without those graphs' "
                        "own precisions")
                    results.pop()
                    for f in tmp.glob(f"{M.SEARCHED}.*"):  # its WAVs and pictures: the page shows the retry's
                        f.unlink()
                    found.update(M.settled(results, found["components"], retry, ", after the per-graph choices failed"))
                    if found["same_as"] is None:
                        measure(M.SEARCHED, M.searched_plan(retry, recommended), "the search's combination, again")
                if found["same_as"] is None:
                    found["verdict"] = results[-1]["verdict"]
            if found["same_as"] is not None:
                found["verdict"] = next(p["verdict"] for p in results if p["name"] == found["same_as"])
            log("[report] search: " + (json.dumps(found["precisions"]) if found["precisions"] else "nothing")
                + f" ({found['reason']})")
        return found


def _measure_all(tmp: Path, source_args, policies, voice, text, seed, target, threads, log,
                 source_cli: list[str] | None = None, search: bool = True) -> dict[str, Any]:
    t0 = time.perf_counter()
    run = _Run(tmp, source_args, voice, text, seed, target, threads, log, source_cli)
    for i, name in enumerate(policies):
        run.measure(name, M.plan_for(name, run.recommended), f"policy {i + 1}/{len(policies)}")
    found = run.search() if search else None
    results, harness, work = run.results, run.harness, run.work
    source_doc, reference_doc = run.source_doc, run.reference_doc
    shutil.rmtree(work)
    from packager.verbs.report import render

    render.chart_png(tmp / "bytes_vs_error.png", results, M.FLOW_MEL_SQNR_MIN_DB)
    rec = M.recommend(results)
    if rec["policy"] is not None:
        rec["command"] = next(p["command"] for p in results if p["name"] == rec["policy"])
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "generator": {"name": GENERATOR_NAME, "version": __version__},
        "source": source_doc, "target": target,
        "settings": {"policies": policies, "baseline": M.BASELINE, "sampling": "greedy", "seed": seed,
                     "threads": threads, "voice": voice.name if voice is not None else None,
                     "text": (text or DEFAULT_TEXT) if voice is not None else None,
                     "input": (f"voice {voice.name!r} saying the text" if voice is not None
                               else "the FP32 bundle's end-to-end golden case (frontend arrays)")},
        "gates": M.GATES,
        "metrics": M.METRICS,
        "reference": reference_doc,
        "sentis_real": harness.summary(),
        "policies": results,
        "chart": "bytes_vs_error.png",
        "search": found,
        "recommendation": rec,
        "phases": M.phases(results, found),
        "timing": {"seconds": M._r(time.perf_counter() - t0, 4), "peak_rss_bytes": _peak_rss_bytes()},
    }


def build_command(policy: str, plan, source_args: dict[str, Any], source_cli: list[str] | None,
                  target: str) -> dict[str, Any]:
    """The exact ``python -m packager build`` command that builds this policy's bundle (with the JSON precision file
    it needs where the policy has no name of its own)."""
    import shlex

    from packager.build import precision as P

    if source_cli is None:
        source_cli = (["--preset", str(source_args["preset"]), "--seed", str(source_args["seed"])]
                      if "preset" in source_args else ["--checkpoint", str(source_args["checkpoint"])])
    if policy in P.NAMED_POLICIES:
        arg, file = policy, None
    else:
        arg = f"{policy}.json"
        file = {"name": arg, "content": {c: plan.for_component(c).to_entry() for c in sorted(plan.recommended)}}
    from packager.build import DEFAULT_OUT

    argv = ["python", "-m", "packager", "build", *source_cli, "--target", target, "--precision", arg,
            "--out", str(DEFAULT_OUT)]
    return {"argv": argv, "line": shlex.join(argv), "precision_file": file}


def _pictures(tmp: Path, name: str, utt, mel: np.ndarray, run, ref_flow_mel: np.ndarray | None) -> dict[str, str]:
    """Waveform and log-mel of the free-running synthesis; for a non-baseline policy, its flow's mel minus FP32's,
    both fed FP32's tokens (what the precision changes in the mel the vocoder gets, with no token chaos)."""
    from packager.frontend import features
    from packager.verbs.report import render

    hop_s = features.MATCHA_MEL["hop"] / float(features.MATCHA_MEL["sample_rate"])
    files = {"waveform": f"{name}.waveform.png", "mel": f"{name}.mel.png"}
    render.waveform_png(tmp / files["waveform"], utt.samples, utt.sample_rate, f"{name}: waveform")
    lo, hi = float(np.percentile(mel, 1)), float(np.max(mel))
    render.mel_png(tmp / files["mel"], mel, hop_s, f"{name}: log-mel", lo, max(hi, lo + 1e-3))
    if run is not None and ref_flow_mel is not None:
        files["diff"] = f"{name}.diff.png"
        render.diff_png(tmp / files["diff"], run.flow_mel, ref_flow_mel, hop_s,
                        f"{name} minus fp32: the flow's mel, both fed FP32's tokens")
    return files


def validate_report(doc: Any, where: str = REPORT_FILE) -> None:
    errors = B.schema_errors(doc, SCHEMA_PATH)
    if errors:
        raise PackagerError(f"does not match schemas/report.schema.json: {errors[0]}", file=where)


def _write_outputs(tmp: Path, doc: dict[str, Any]) -> None:
    from packager.verbs.report import render

    text = json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    validate_report(json.loads(text))
    (tmp / REPORT_FILE).write_text(text, encoding="utf-8")
    # the page is rendered from the file just written, so it cannot show what report.json does not hold
    (tmp / PAGE_FILE).write_text(render.page(json.loads((tmp / REPORT_FILE).read_text(encoding="utf-8"))),
                                 encoding="utf-8")
