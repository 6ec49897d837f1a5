"""The real-Sentis matrix: tiny bundles of every precision policy, for each Sentis target, run on Unity-compiled Sentis.

Used by tests/sentis/test_sentis_real.py, and as a command that prints the table for a closing note::

    MIRROR=/work/.mirror python -m tests.sentis_real.matrix [--out DIR] [--policies fp32,recommended] [--sentis 2.4,2.1]

Each bundle runs twice: as the Editor imports it (.onnx -> ModelAsset, ModelQuantizer at load) and as a player ships
it (baked: quantized and written as .sentis by SentisModels.Bake, loaded with ModelLoader.Load(path)).

The Sentis DLLs come from local git copies of public repositories (README.md); nothing of theirs is in this tree.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RUN_SH = HERE / "run.sh"

# Sentis version (run.sh --sentis) -> the packager's --target, and the repositories run.sh extracts DLLs from.
VERSIONS = {
    "2.4": ("ie-2.4", ("AlvaGonz+Juego-2D-Sep-Dic-2025", "needle-mirror+com.unity.ai.inference")),
    "2.1": ("sentis-2.1", ("leienthuc250904+Project-2-", "needle-mirror+com.unity.sentis")),
}
# Policy name -> the value given to --precision (uint8 has no name of its own: a JSON policy for every component).
UINT8_POLICY = {"campplus": "uint8", "llm": "uint8", "flow": "uint8", "hift": "uint8"}
POLICIES = ("fp32", "recommended", "fp16", "uint8")
TOOLS = ("mono", "mcs", "ilasm", "git")


def unavailable(version: str) -> str | None:
    """Why the harness cannot run Sentis ``version`` here (None when it can)."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"real-Sentis harness needs {', '.join(missing)} (apt-get install mono-devel git)"
    mirror = os.environ.get("MIRROR", "")
    if not mirror:
        return ("real-Sentis harness: set MIRROR to a folder with local git copies of the Sentis DLL repositories "
                "(tests/sentis_real/README.md)")
    for name in VERSIONS[version][1]:
        if not (Path(mirror) / name / "repo").is_dir():
            return f"real-Sentis harness: {Path(mirror) / name / 'repo'} is missing (tests/sentis_real/README.md)"
    return None


def build_runner(version: str, build_dir: Path) -> Path:
    """Compile shims and runner for ``version`` into ``build_dir`` (run.sh --build-only); the runner's path."""
    env = dict(os.environ, SENTIS_REAL_BUILD=str(build_dir), MAIN=str(REPO))
    proc = subprocess.run(["bash", str(RUN_SH), "--sentis", version, "--build-only"], env=env, cwd=REPO,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"run.sh --sentis {version} --build-only failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def build_bundle(policy: str, target: str, out: Path, work: Path) -> Path:
    """The tiny bundle under ``policy`` for ``target`` (python -m packager build)."""
    precision = policy
    if policy == "uint8":
        precision = str(work / "uint8.json")
        Path(precision).write_text(json.dumps(UINT8_POLICY), encoding="utf-8")
    cmd = [sys.executable, "-m", "packager", "build", "--out", str(out), "--precision", precision,
           "--target", target, "--quiet", "--force"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return out


def run_cases(runner: Path, bundle: Path, json_out: Path, baked: Path | None = None) -> dict:
    """Every golden case of ``bundle`` on real Sentis, chains carried, assertions thrown; the runner's JSON.
    ``baked``: on the baked .sentis files written to that folder instead of the imported models."""
    extra = ["--baked", str(baked)] if baked is not None else []
    proc = subprocess.run(["mono", "--debug", str(runner), str(bundle.resolve()), "--json", str(json_out), *extra],
                          cwd=runner.parent, capture_output=True, text=True)
    if not json_out.exists():
        raise RuntimeError(f"the runner wrote no results (exit {proc.returncode}):\n{proc.stdout[-4000:]}\n"
                           f"{proc.stderr[-4000:]}")
    result = json.loads(json_out.read_text(encoding="utf-8"))
    result["exit_code"] = proc.returncode
    result["log"] = proc.stdout
    return result


@dataclass
class GraphRow:
    graph: str
    unity_quantization: str
    imported: bool
    passed: int
    cases: int
    worst: float | None
    asset_bytes: int = 0
    baked_bytes: int | None = None
    problems: list[str] = field(default_factory=list)


def rows(result: dict) -> list[GraphRow]:
    """Per graph: imported, cases passed, worst max abs error, and every problem (import error, import warning,
    logged error, failed case) as one line."""
    out = []
    for g in result["graphs"]:
        problems = []
        if not g["imported"]:
            problems.append(f"{g['graph']}: import failed: {(g['error'] or '').splitlines()[0]}")
        problems += [f"{g['graph']}: import warning: {w}" for w in g["warnings"]]
        problems += [f"{g['graph']}: logged error at import: {e}" for e in g["logged_errors"]]
        worst = None
        for c in g["cases"]:
            values = [v for v in c["max_abs"].values() if v is not None]
            if values:
                worst = max(values + ([worst] if worst is not None else []))
            if not c["passed"]:
                why = (c["error"] or "").splitlines()[0] if c["error"] else "out of tolerance"
                problems.append(f"{g['graph']}/{c['name']}: {why} (max abs {c['max_abs']})")
            problems += [f"{g['graph']}/{c['name']}: logged error: {e}" for e in c["logged_errors"]]
        out.append(GraphRow(g["graph"], g["unity_quantization"], g["imported"],
                            sum(c["passed"] for c in g["cases"]), len(g["cases"]), worst, g["asset_bytes"],
                            g.get("baked_bytes"), problems))
    return out


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def markdown(table: dict[tuple[str, str, str], list[GraphRow]], sentis: dict[str, str]) -> str:
    """One line per policy x Sentis x (imported | baked)."""
    lines = ["| policy | Sentis | models | graphs imported | cases passed | worst max abs per graph | ModelAsset bytes "
             "(.onnx import) | shipped .sentis bytes | problems |", "|---|---|---|---|---|---|---|---|---|"]
    for (policy, version, kind), rs in table.items():
        worst = ", ".join(f"{r.graph} {r.worst:.1e}" if r.worst is not None else f"{r.graph} -" for r in rs)
        problems = sum(len(r.problems) for r in rs)
        baked = sum(r.baked_bytes or 0 for r in rs) if kind == "baked" else None
        lines.append(f"| {policy} | {sentis.get(version, version)} | {kind} | {sum(r.imported for r in rs)}/{len(rs)} | "
                     f"{sum(r.passed for r in rs)}/{sum(r.cases for r in rs)} | {worst} | "
                     f"{_mb(sum(r.asset_bytes for r in rs))} | {_mb(baked) if baked is not None else '-'} | {problems} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.sentis_real.matrix", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "sentis_matrix")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--sentis", default=",".join(VERSIONS))
    args = ap.parse_args(argv)
    versions = args.sentis.split(",")
    for v in versions:
        if v not in VERSIONS:
            print(f"--sentis: unknown version {v!r} (expected {', '.join(VERSIONS)})", file=sys.stderr)
            return 2
        why = unavailable(v)
        if why:
            print(why, file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    runners = {v: build_runner(v, args.out / f"runner{v}") for v in versions}
    table, sentis, failed = {}, {}, 0
    for policy in args.policies.split(","):
        for v in versions:
            bundle = build_bundle(policy, VERSIONS[v][0], args.out / f"{policy}-{v}", args.out)
            for kind in ("imported", "baked"):
                baked = args.out / f"{policy}-{v}-sentis" if kind == "baked" else None
                result = run_cases(runners[v], bundle, args.out / f"{policy}-{v}-{kind}.json", baked)
                sentis[v] = result["sentis"]
                table[(policy, v, kind)] = rs = rows(result)
                for r in rs:
                    for p in r.problems:
                        failed += 1
                        print(f"{policy} / {result['sentis']} / {kind}: {p}", file=sys.stderr)
    print(markdown(table, sentis))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
