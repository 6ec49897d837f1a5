"""Read upstream's hyperpyyaml config (``cosyvoice3.yaml``) as plain data.

Upstream loads it with hyperpyyaml, which *executes* the ``!new:``/``!name:``/``!apply:`` tags. We never import or
execute anything: every tagged node becomes a ``Tagged`` record (tag + class path + arguments), ``!ref <key>``
references are resolved against the document, and simple arithmetic in references (``<a> * <b>``) is evaluated
with a tiny literal-only evaluator.
"""
from __future__ import annotations

import ast
import json
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from packager.contract.errors import CheckpointError


@dataclass
class Tagged:
    """A hyperpyyaml object node: ``!new:module.Class {kwargs}`` (kind ``new``), ``!name:`` or ``!apply:``."""

    kind: str
    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    args: list[Any] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        return self.kwargs.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.kwargs[key]


@dataclass
class _Ref:
    expr: str


class _Loader(yaml.SafeLoader):
    pass


def _multi(loader: _Loader, suffix: str, node: yaml.Node, kind: str) -> Tagged:
    if isinstance(node, yaml.MappingNode):
        return Tagged(kind, suffix, kwargs=loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Tagged(kind, suffix, args=loader.construct_sequence(node, deep=True))
    value = loader.construct_scalar(node)
    return Tagged(kind, suffix, args=[] if value in ("", None) else [value])


for _kind in ("new", "name", "apply"):
    _Loader.add_multi_constructor(f"!{_kind}:", lambda ld, sfx, nd, k=_kind: _multi(ld, sfx, nd, k))
_Loader.add_constructor("!ref", lambda ld, nd: _Ref(str(ld.construct_scalar(nd))))
_Loader.add_constructor("!copy", lambda ld, nd: _Ref(str(ld.construct_scalar(nd))))

_REF = re.compile(r"<([^<>]+)>")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.USub: operator.neg, ast.Pow: operator.pow}


def _eval_literal(expr: str) -> Any:
    def ev(n: ast.AST) -> Any:
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)):
            return n.value
        if isinstance(n, ast.BinOp) and type(n.op) in _OPS:
            return _OPS[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.UnaryOp) and type(n.op) in _OPS:
            return _OPS[type(n.op)](ev(n.operand))
        raise ValueError(expr)
    return ev(ast.parse(expr, mode="eval"))


def _lookup(doc: dict, dotted: str, file: str) -> Any:
    cur: Any = doc
    for part in re.split(r"[.\[\]]+", dotted.strip()):
        if not part:
            continue
        if isinstance(cur, Tagged):
            cur = cur.kwargs
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise CheckpointError("reference to an unknown key", file=file, key=dotted)
    return cur


def _resolve(node: Any, doc: dict, file: str, depth: int = 0) -> Any:
    if depth > 50:
        raise CheckpointError("reference cycle", file=file)
    if isinstance(node, _Ref):
        names = _REF.findall(node.expr)
        if len(names) == 1 and node.expr.strip() == f"<{names[0]}>":
            return _resolve(_lookup(doc, names[0], file), doc, file, depth + 1)
        values = {n: _resolve(_lookup(doc, n, file), doc, file, depth + 1) for n in names}
        text = _REF.sub(lambda m: repr(values[m.group(1)]), node.expr)
        try:
            return _eval_literal(text)
        except (ValueError, SyntaxError, TypeError, ZeroDivisionError):
            return text
    if isinstance(node, Tagged):
        return Tagged(node.kind, node.target, {k: _resolve(v, doc, file, depth) for k, v in node.kwargs.items()},
                      [_resolve(v, doc, file, depth) for v in node.args])
    if isinstance(node, dict):
        return {k: _resolve(v, doc, file, depth) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, doc, file, depth) for v in node]
    return node


def load_hyperpyyaml(path: Path | str) -> dict[str, Any]:
    """Parse an upstream config file into plain data (dicts, lists, scalars, ``Tagged``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"cannot read file: {exc}", file=str(path)) from None
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - our own SafeLoader subclass
    except yaml.YAMLError as exc:
        raise CheckpointError(f"not valid YAML: {exc}", file=str(path)) from None
    if not isinstance(doc, dict):
        raise CheckpointError("expected a YAML mapping at the top level", file=str(path))
    return _resolve(doc, doc, str(path))


def require(node: Any, key: str, file: str, kind: type | tuple[type, ...] = (int, float)) -> Any:
    """Fetch ``key`` from a mapping or ``Tagged`` node and check its type, naming the key on failure."""
    mapping = node.kwargs if isinstance(node, Tagged) else node
    if not isinstance(mapping, dict) or key not in mapping:
        raise CheckpointError("missing key", file=file, key=key)
    value = mapping[key]
    if kind and not isinstance(value, kind):
        raise CheckpointError("wrong type", file=file, key=key,
                              expected=getattr(kind, "__name__", str(kind)), found=repr(value))
    return value


def load_json(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError("file not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"not valid JSON: {exc}", file=str(path)) from None
