"""The bundle format, in one place: its layout, reading ``manifest.json`` (strict JSON), the schema, the
cross-reference rules the schema cannot express, safe paths, the files a manifest lists and their checks, and the
``.npy`` rules its arrays follow.

Everything that reads a bundle (``verify``, ``synth``, ``voice``, ``run``, ``unity-install``) and the generator of
the C# reader's test vectors (``tests/csharp/core_vectors.py``) use this module; the C# reader
(``unity_project/Assets/CosyVoice3/Runtime/Core/BundleManifest.cs``, ``Npy.cs``, ``BundleFiles.cs``) implements the
same rules and is tested against those vectors (``tests/csharp/test_core.py``). Writing a bundle is the build's
package stage (``packager/build/stages/package.py``), which validates with this module before it writes.

Torch-free and onnxruntime-free on purpose: the verbs that only read bundles import it.
"""
from __future__ import annotations

import ast
import hashlib
import json
import struct
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Mapping

import numpy as np

from packager.contract.errors import PackagerError

# ---------------------------------------------------------------------------------------------------- layout
FORMAT_VERSION = 2  # 2: host constants typed per component, every graph named by its role (constants.graphs)
MANIFEST_FILE = "manifest.json"
PACKAGE_FILE = "package.json"
MODELS_DIR = "Models"  # Models/<graph>.onnx (+ .onnx.data)
DATA_DIR = "Data"  # Data/<name>.npy.bytes: host-side arrays
GOLDEN_DIR = "Golden~"  # Golden~/<component>/<graph>/<case>/{in,out}.<tensor>.npy ('~': Unity does not import it)
PIPELINE_GOLDEN_DIR = f"{GOLDEN_DIR}/pipeline"  # Golden~/pipeline/<case>/{in,out}.<tensor>.npy
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"  # the JSON Schemas of the files Python and C# share
SCHEMA_PATH = SCHEMA_DIR / "manifest.schema.json"

# Graph input/output dtypes (the schema's "dtype" enum) and their numpy types.
DTYPES = {"float32": np.float32, "int32": np.int32}
# The .npy element types a bundle (or voice pack) file may hold: little-endian float32, int32, float16.
NPY_DESCR = {"<f4": np.float32, "<i4": np.int32, "<f2": np.float16}
NPY_MAX_RANK = 8


# ---------------------------------------------------------------------------------------------------- reading
class _StrictJSONError(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _StrictJSONError(f"{name} is not JSON (no NaN/Infinity literals)")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _StrictJSONError(f"duplicate key {k!r}")
        out[k] = v
    return out


def parse_json(text: str, where: str) -> Any:
    """Strict JSON, as the C# reader parses it: no NaN/Infinity literals, no duplicate keys."""
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
    except (json.JSONDecodeError, _StrictJSONError) as exc:
        raise PackagerError(f"not valid JSON: {exc}", file=where) from None


def load_manifest(bundle: Path) -> dict[str, Any]:
    """``bundle/manifest.json`` as data (strict JSON), not yet validated: see ``open_manifest``."""
    bundle = Path(bundle)
    path = bundle / MANIFEST_FILE
    if not bundle.is_dir():
        raise PackagerError("not a folder", file=str(bundle), expected="a bundle folder with manifest.json")
    if not path.is_file():
        raise PackagerError("missing", file=str(path), expected="a bundle folder with manifest.json")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PackagerError(f"not valid JSON: {exc}", file=str(path)) from None
    return parse_json(text, str(path))


def open_manifest(bundle: Path) -> dict[str, Any]:
    """The manifest of ``bundle``, checked against the schema and the cross-reference rules (``check_manifest``)."""
    manifest = load_manifest(bundle)
    check_manifest(manifest, str(Path(bundle) / MANIFEST_FILE))
    return manifest


# ---------------------------------------------------------------------------------------------------- schema
@lru_cache(maxsize=None)
def load_schema(path: Path) -> dict[str, Any]:
    """A JSON Schema shipped in ``schemas/`` (the manifest's, the voice pack's), read once."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackagerError(f"{Path(path).name} not found (broken installation?)", file=str(path)) from None


def schema() -> dict[str, Any]:
    return load_schema(SCHEMA_PATH)


def schema_errors(doc: Any, schema_path: Path, limit: int | None = None) -> list[str]:
    """``path: message`` for every place ``doc`` breaks the schema at ``schema_path`` (sorted by path)."""
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(load_schema(schema_path)).iter_errors(doc),
                    key=lambda e: list(e.path))
    return [f"{'/'.join(str(p) for p in e.path) or '(root)'}: {e.message}" for e in errors[:limit]]


def schema_problems(manifest: Any, limit: int | None = None) -> list[str]:
    """``path: message`` for every place ``manifest`` breaks ``schemas/manifest.schema.json`` (sorted by path)."""
    return schema_errors(manifest, SCHEMA_PATH, limit)


def validate_manifest(manifest: Any, where: str = MANIFEST_FILE) -> None:
    """The schema alone (``check_manifest`` adds the cross-reference rules). A bundle of another format version gets
    one message saying so, not the schema's list of every difference."""
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version != FORMAT_VERSION:
        raise PackagerError(f"was written by {'an older' if version < FORMAT_VERSION else 'a newer'} packager "
                            f"(manifest format_version {version}); rebuild the bundle with `python -m packager build`",
                            file=where, key="format_version", expected=str(FORMAT_VERSION), found=str(version))
    lines = schema_problems(manifest, limit=10)
    if lines:
        raise PackagerError("does not match schemas/manifest.schema.json:\n  " + "\n  ".join(lines), file=where)


def check_manifest(manifest: Any, where: str = MANIFEST_FILE) -> None:
    """Schema, then the cross-reference rules: what every reader of a bundle requires before using it."""
    validate_manifest(manifest, where)
    problems = cross_reference_problems(manifest)
    if problems:
        raise PackagerError("breaks the manifest's cross-reference rules:\n  " + "\n  ".join(problems[:10]),
                            file=where)


def manifest_problems(manifest: Any) -> list[str]:
    """Everything wrong with a parsed manifest: the schema's findings, or (when it passes) the cross-references'."""
    return schema_problems(manifest) or cross_reference_problems(manifest)


# ------------------------------------------------------------------------------------------ cross-references
def _duplicates(names: list[str]) -> list[str]:
    return sorted({n for n in names if names.count(n) > 1})


def _fits(spec: Mapping[str, Any], t: Mapping[str, Any]) -> bool:
    """A golden array ``t`` has the graph tensor's dtype, rank and every fixed dim of ``spec``."""
    shape, dims = spec["shape"], t["shape"]
    return (spec["dtype"] == t["dtype"] and len(shape) == len(dims)
            and all(isinstance(d, str) or d == n for d, n in zip(shape, dims)))


def cross_reference_problems(manifest: Mapping[str, Any]) -> list[str]:
    """Rules the schema cannot express, for a schema-valid manifest (the C# ``BundleManifest.Validate`` and
    ``PipelineGolden.Parse`` enforce the same):

    * names are unique: components and graphs bundle-wide (a graph is ``Models/<name>.onnx``), data per component,
      inputs, outputs, tolerances, golden cases and each case's input and output arrays per graph;
    * every tolerance names a graph output;
    * every golden case has exactly the graph's inputs, only graph outputs, each output with a tolerance, and each
      array the graph tensor's dtype, rank and fixed dims;
    * a ``chain`` points to an earlier case of the same graph and carries outputs to inputs;
    * ``constants.graphs`` (role -> graph name) names only the component's own graphs;
    * every pipeline golden output has a tolerance.
    """
    problems = []
    comps = manifest["components"]
    for d in _duplicates([c["name"] for c in comps]):
        problems.append(f"duplicate component name {d!r}")
    for d in _duplicates([g["name"] for c in comps for g in c["graphs"]]):
        problems.append(f"duplicate graph name {d!r}")
    for c in comps:
        for d in _duplicates([x["name"] for x in c["data"]]):
            problems.append(f"{c['name']}: duplicate data name {d!r}")
        roles = c["constants"].get("graphs") if isinstance(c["constants"], dict) else None
        own = [g["name"] for g in c["graphs"]]
        for role, name in (roles.items() if isinstance(roles, dict) else ()):
            if isinstance(name, str) and name not in own:
                problems.append(f"{c['name']}: constants.graphs.{role} {name!r} is not a graph of this component")
        for g in c["graphs"]:
            where = f"{c['name']}/{g['name']}"
            ins, outs = [t["name"] for t in g["inputs"]], [t["name"] for t in g["outputs"]]
            specs = {"inputs": {t["name"]: t for t in g["inputs"]}, "outputs": {t["name"]: t for t in g["outputs"]}}
            tols = [t["output"] for t in g["tolerances"]]
            for label, names in (("input", ins), ("output", outs), ("tolerance", tols),
                                 ("golden", [k["name"] for k in g["goldens"]])):
                for d in _duplicates(names):
                    problems.append(f"{where}: duplicate {label} name {d!r}")
            problems += [f"{where}: tolerance for unknown output {t!r}" for t in tols if t not in outs]
            seen: list[str] = []
            for k in g["goldens"]:
                case = f"{where}/{k['name']}"
                got_in = [t["name"] for t in k["inputs"]]
                if sorted(got_in) != sorted(ins):
                    problems.append(f"{case}: golden inputs {got_in} differ from the graph inputs {ins}")
                for t in k["outputs"]:
                    if t["name"] not in outs:
                        problems.append(f"{case}: golden output {t['name']!r} is not a graph output")
                    elif t["name"] not in tols:
                        problems.append(f"{case}: golden output {t['name']!r} has no tolerance")
                for side in ("inputs", "outputs"):
                    for d in _duplicates([t["name"] for t in k[side]]):
                        problems.append(f"{case}: duplicate golden {side[:-1]} name {d!r}")
                    for t in k[side]:
                        spec = specs[side].get(t["name"])
                        if spec is not None and not _fits(spec, t):
                            problems.append(f"{case}: golden {side[:-1]} {t['name']!r} is {t['dtype']} {t['shape']}, "
                                            f"the graph's is {spec['dtype']} {spec['shape']}")
                chain = k.get("chain")
                if chain:
                    if chain["after"] not in seen:
                        problems.append(f"{case}: chain.after {chain['after']!r} is not an earlier case")
                    for dst, src in chain["carry"].items():
                        if dst not in ins or src not in outs:
                            problems.append(f"{case}: chain carries {src!r} -> {dst!r}, not an output -> input")
                seen.append(k["name"])
    for p in manifest.get("pipeline", {}).get("goldens", []):
        tols = {t["output"] for t in p["tolerances"]}
        problems += [f"pipeline/{p['name']}: output {t['name']!r} has no tolerance"
                     for t in p["outputs"] if t["name"] not in tols]
    return problems


# ---------------------------------------------------------------------------------------------------- paths
def safe_path(root: Path, rel: str, field: str) -> Path:
    """Resolve a manifest path inside ``root`` or raise naming the field: relative, ``/``-separated, no ``.``/``..``
    segment, no control characters, not a symlink (nor under one), and inside the bundle once resolved."""
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or "\\" in rel or (len(rel) > 1 and rel[1] == ":"):
        raise PackagerError("path must be relative", key=field, found=rel)
    if any(ord(ch) < 32 or ch == "\x7f" for ch in rel):
        raise PackagerError("path contains control characters", key=field, found=repr(rel))
    if any(part in ("..", ".") for part in p.parts):
        raise PackagerError("path must not contain '..' or '.' segments", key=field, found=rel)
    cur = Path(root)
    for part in p.parts:
        cur = cur / part
        if cur.is_symlink():
            raise PackagerError("path is (or passes through) a symlink", key=field, found=rel)
    resolved = cur.resolve()
    if Path(root).resolve() not in resolved.parents:
        raise PackagerError("path leaves the bundle", key=field, found=rel)
    return cur


# ---------------------------------------------------------------------------------------------------- files
def listed_files(manifest: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(field path, entry with file/sha256/bytes) for every file the manifest lists."""
    for ci, c in enumerate(manifest.get("components", [])):
        for gi, g in enumerate(c.get("graphs", [])):
            base = f"components[{ci}].graphs[{gi}]"
            yield base, g
            if "external_data" in g:
                yield base + ".external_data", g["external_data"]
            for ki, case in enumerate(g.get("goldens", [])):
                for side in ("inputs", "outputs"):
                    for ti, t in enumerate(case.get(side, [])):
                        yield f"{base}.goldens[{ki}].{side}[{ti}]", t
        for di, d in enumerate(c.get("data", [])):
            yield f"components[{ci}].data[{di}]", d
    for pi, case in enumerate(manifest.get("pipeline", {}).get("goldens", [])):
        for side in ("inputs", "outputs"):
            for ti, t in enumerate(case.get(side, [])):
                yield f"pipeline.goldens[{pi}].{side}[{ti}]", t


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_size_and_digest(path: Path, entry: Mapping[str, Any], field: str, size: int, digest) -> None:
    if size != entry["bytes"]:
        raise PackagerError("wrong size (differs from the manifest)", file=str(path), key=field,
                            expected=f"{entry['bytes']} bytes", found=f"{size} bytes")
    got = digest()
    if got != entry["sha256"]:
        raise PackagerError("sha256 differs from the manifest (file modified or corrupt)", file=str(path), key=field,
                            expected=entry["sha256"][:16] + "…", found=got[:16] + "…")


def check_file(root: Path, entry: Mapping[str, Any], field: str) -> Path:
    """The path of a listed file after the path rules and its size and sha256 checks (the file is not read
    otherwise); an error names the file and the manifest field."""
    path = safe_path(root, entry["file"], field)
    if not path.is_file():
        raise PackagerError("listed file is missing", file=str(path), key=field)
    _check_size_and_digest(path, entry, field, path.stat().st_size, lambda: sha256_file(path))
    return path


def check_graph_files(root: Path, graph: Mapping[str, Any], field: str) -> Path:
    """A graph's ``.onnx`` (and its external data file, if any) checked like ``check_file``; the ``.onnx`` path."""
    if "external_data" in graph:
        check_file(root, graph["external_data"], field + ".external_data")
    return check_file(root, graph, field)


# ---------------------------------------------------------------------------------------------------- arrays
def read_npy(data: bytes, where: str) -> np.ndarray:
    """The ``.npy`` rules of a bundle's (and voice pack's) arrays, as the C# ``Npy.Read`` applies them: version 1.0
    or 2.0, an ASCII header that is a dict of exactly ``descr``/``fortran_order``/``shape``, little-endian float32,
    int32 or float16, C order, rank <= 8, and exactly the bytes the shape needs."""
    def bad(why: str) -> PackagerError:
        return PackagerError(f"not a bundle .npy array: {why}", file=where)

    if len(data) < 10 or data[:6] != b"\x93NUMPY":
        raise bad("bad magic (not an .npy file)")
    major, minor = data[6], data[7]
    if (major, minor) == (1, 0):
        start = 10
        hlen = struct.unpack("<H", data[8:10])[0]
    elif (major, minor) == (2, 0):
        start = 12
        if len(data) < start:
            raise bad("truncated header")
        hlen = struct.unpack("<I", data[8:12])[0]
    else:
        raise bad(f"version {major}.{minor} (1.0 or 2.0 expected)")
    header = data[start:start + hlen]
    if len(header) != hlen or any(b > 0x7e for b in header):
        raise bad("truncated or non-ASCII header")
    try:
        d = ast.literal_eval(header.decode("ascii"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise bad("header is not a Python literal") from None
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise bad("header must be a dict of exactly descr, fortran_order and shape")
    if d["descr"] not in NPY_DESCR:
        raise bad(f"dtype {d['descr']!r} (expected one of {', '.join(map(repr, NPY_DESCR))})")
    if d["fortran_order"] is not False:
        raise bad("fortran_order must be False (C order)")
    shape = d["shape"]
    if (not isinstance(shape, tuple) or any(type(s) is not int or s < 0 for s in shape)
            or len(shape) > NPY_MAX_RANK):
        raise bad(f"shape {shape!r} (a tuple of at most {NPY_MAX_RANK} non-negative ints expected)")
    dt = np.dtype(d["descr"])
    body = data[start + hlen:]
    need = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if len(body) != need:
        raise bad(f"{len(body)} data bytes, the shape needs {need}")
    return np.frombuffer(body, dtype=dt).reshape(shape).copy()


def load_array(root: Path, entry: Mapping[str, Any], field: str, check_digest: bool = True) -> np.ndarray:
    """A listed ``.npy`` file: path rules, size and sha256 (unless ``check_digest=False``: already checked), the
    ``.npy`` rules, and the dtype and shape its manifest entry gives."""
    path = safe_path(root, entry["file"], field)
    if not path.is_file():
        raise PackagerError("listed file is missing", file=str(path), key=field)
    data = path.read_bytes()
    if check_digest:
        _check_size_and_digest(path, entry, field, len(data), lambda: hashlib.sha256(data).hexdigest())
    arr = read_npy(data, str(path))
    if str(arr.dtype) != entry["dtype"] or list(arr.shape) != list(entry["shape"]):
        raise PackagerError("array does not match its manifest entry", file=str(path),
                            expected=f"{entry['dtype']} {entry['shape']}", found=f"{arr.dtype} {list(arr.shape)}")
    return arr
