"""Vectors for the C# host loops (tests/csharp/test_host.py; tests/csharp/cs/HostTests.cs): Python runs its own host
loops (packager/runtime/*.py, packager/runtime/pipeline.py) and records what the C# mirror must reproduce.

``write_host_vectors(out, bundle)`` writes, under ``out``, and returns ``index.json``'s content:

* ``pcg64``: numpy ``default_rng(seed)``: PCG64 state/increment after seeding, first raw uint64s and first doubles;
* ``ras``: sequences of ``ras_sample`` draws sharing one generator (given log-probs and histories; tokens that
  trigger the repetition re-draw included) and the generator's next double afterwards (same number of draws consumed);
* ``log_softmax``: logits and numpy's float32 log-softmax (exp/log are numpy SIMD kernels: compared in ulps);
* ``mt``: a small noise table with its MT19937 state, extended past the cap by ``noise_for_frames``;
* ``silent``: the silent-token filter on edge cases;
* ``replays``: every graph call (inputs and outputs) of real runs over a tiny bundle's graphs on onnxruntime -- LLM
  decodes (greedy, RAS, corrected quirk), flow Euler/CFG runs (streaming and not) and whole ``tts()`` runs
  (greedy, RAS, streaming, the manifest's pipeline golden) -- with their results. C# replays them: each call's inputs
  must equal the recorded ones bit for bit, and its results must equal Python's.

Arrays are .npy files; every recorded array is stored once under ``blobs/`` by content hash (the KV cache a step
returns is the one the next step takes).
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from packager.runtime import euler_cfg, llm_generate
from packager.runtime.hift_noise import continue_noise, noise_for_frames
from packager.runtime.pipeline import Pipeline, example_case, synthesize

F32 = np.float32


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array(a, order="C"), version=(1, 0), allow_pickle=False)
    return buf.getvalue()


class Store:
    """Arrays as .npy files under ``root``, deduplicated by content."""

    def __init__(self, root: Path):
        self.root = root
        (root / "blobs").mkdir(parents=True, exist_ok=True)

    def put(self, a: np.ndarray) -> str:
        a = np.asarray(a)
        assert a.dtype in (np.float32, np.int32), a.dtype  # graph I/O contract: float32 / int32 only
        data = _npy_bytes(a)
        rel = f"blobs/{hashlib.sha1(data).hexdigest()}.npy"
        path = self.root / rel
        if not path.exists():
            path.write_bytes(data)
        return rel


class Recorder:
    """Wraps graph runners: each call's graph name, inputs and outputs are stored in call order."""

    def __init__(self, runners: Mapping[str, Any], store: Store):
        self.inner, self.store, self.calls = runners, store, []

    @property
    def runners(self) -> dict[str, Any]:
        return {name: (lambda inputs, n=name: self._call(n, inputs)) for name in self.inner}

    def _call(self, name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.inner[name](inputs)
        self.calls.append({"graph": name,
                           "inputs": {k: self.store.put(v) for k, v in inputs.items()},
                           "outputs": {k: self.store.put(v) for k, v in outputs.items()}})
        return outputs


# ---------------------------------------------------------------------------------------------------------------
# RNG, sampling and filter vectors
# ---------------------------------------------------------------------------------------------------------------

PCG_SEEDS = [0, 1, 7, 42, 1234, 2**31 - 1, 2**32, 2**32 + 5, 2**63 + 12345, 2**64 - 1]


def pcg64_vectors(n: int = 64) -> list[dict[str, Any]]:
    out = []
    for seed in PCG_SEEDS:
        st = np.random.default_rng(seed).bit_generator.state["state"]
        words = [st["state"] >> 64, st["state"] & (2**64 - 1), st["inc"] >> 64, st["inc"] & (2**64 - 1)]
        raw = np.random.default_rng(seed).bit_generator.random_raw(n)
        doubles = np.random.default_rng(seed).random(n)
        out.append({"seed": str(seed), "state": [str(w) for w in words], "raw": [str(int(x)) for x in raw],
                    "doubles": [repr(float(x)) for x in doubles]})
    return out


def ras_vectors(store: Store, constants: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Draw sequences: peaked, flat and in-between distributions; histories that force the re-draw branch."""
    params = constants["sampling"]
    rng_data = np.random.default_rng(2024)
    cases = []
    for k, (vocab, scale, seed) in enumerate([(264, 1.0, 0), (264, 4.0, 1), (264, 0.2, 2), (6761, 3.0, 3),
                                              (40, 8.0, 4), (264, 12.0, 5), (40, 0.0, 6)]):  # 0.0: all ties
        gen = np.random.default_rng(seed)
        decoded: list[int] = []
        steps = []
        for i in range(24):
            logits = (rng_data.standard_normal(vocab) * scale).astype(F32)
            if i % 5 == 4:
                logits[rng_data.integers(vocab)] = -np.inf  # a masked id (min_len)
            logp = llm_generate.log_softmax(logits)
            if i % 3 == 2 and decoded:  # make the last token likely again: exercises the repetition re-draw
                logits[decoded[-1]] += 50.0
                logp = llm_generate.log_softmax(logits)
            token = llm_generate.ras_sample(logp, decoded, params, gen)
            steps.append({"logp": store.put(logp), "decoded": list(decoded), "token": token})
            decoded.append(token)
        cases.append({"name": f"ras{k}_v{vocab}_s{scale}", "seed": str(seed), "steps": steps,
                      "next_double": repr(float(gen.random()))})
    return cases


def log_softmax_vectors(store: Store) -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    out = []
    for k, (n, scale) in enumerate([(264, 1.0), (264, 10.0), (6761, 3.0), (1, 1.0), (7, 100.0), (129, 0.01)]):
        x = (rng.standard_normal(n) * scale).astype(F32)
        e = np.exp(x - x.max())  # numpy's own exp values: the C# pairwise sum of them must equal numpy's sum
        out.append({"name": f"lsm{k}_n{n}", "logits": store.put(x), "logp": store.put(llm_generate.log_softmax(x)),
                    "exp": store.put(e), "sum": store.put(e.sum(axis=-1, keepdims=True))})
    return out


def mt_vectors(store: Store) -> list[dict[str, Any]]:
    """Tables with their state after the cap; noise_for_frames within and past the cap (regeneration included)."""
    out = []
    for k, (seed, skip, cap, channels, frames, spf) in enumerate([
            (0, 1000, 100, 9, 4, 48), (5, 0, 37, 9, 9, 30), (9, 623, 64, 3, 50, 40), (1, 123, 200, 9, 2, 48)]):
        bg = np.random.RandomState(seed)._bit_generator
        bg.random_raw(skip) if skip else None
        st = bg.state["state"]
        state0 = np.concatenate([st["key"].astype(np.uint32).view(np.int32), [np.int32(st["pos"])]])
        table, state_after = continue_noise(state0, cap, channels)
        noise = noise_for_frames(table, state_after, frames, spf)
        out.append({"name": f"mt{k}_cap{cap}_rows{frames * spf}", "table": store.put(table),
                    "state": store.put(state_after), "frames": frames, "samples_per_frame": spf,
                    "expected": store.put(noise)})
    return out


def silent_vectors(constants: Mapping[str, Any]) -> list[dict[str, Any]]:
    s = constants["silent_tokens"]
    a, b, c = s[0], s[1], s[2]
    lists = {
        "empty": [], "one_silent": [a], "run_at_limit": [a] * 5, "run_over_limit": [a] * 6 + [3],
        "long_run_mixed_silent_ids": [a, b, c, a, b, c, a, b, 3, a, a],
        "reset_by_speech": [a] * 5 + [3] + [a] * 7, "only_speech": [3, 4, 5, 6],
        "trailing_run": [3] + [b] * 12, "ids_above_vocab_are_not_silent": [a] * 6 + [2241, 2242] + [a] * 2,
    }
    return [{"name": k, "tokens": v, "expected": llm_generate.silent_filter(v, constants)} for k, v in lists.items()]


# ---------------------------------------------------------------------------------------------------------------
# Recorded runs over a bundle
# ---------------------------------------------------------------------------------------------------------------

def _arrays(store: Store, d: Mapping[str, np.ndarray]) -> dict[str, str]:
    return {k: store.put(np.asarray(v)) for k, v in d.items()}


def replay_vectors(store: Store, bundle: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    pipe = Pipeline.open(bundle, manifest=manifest)
    llm_c, flow_c = pipe.constants["llm"], pipe.constants["flow"]
    out: list[dict[str, Any]] = []
    golden = manifest["pipeline"]["goldens"][0]
    case = {t["name"]: np.load(bundle / t["file"]) for t in golden["inputs"]}

    def record(name: str, kind: str, fn, **meta) -> Any:
        rec = Recorder(pipe.runners, store)
        result = fn(rec.runners)
        calls = f"replays/{name}.json"
        (store.root / "replays").mkdir(exist_ok=True)
        (store.root / calls).write_text(json.dumps(rec.calls))
        out.append({"name": name, "kind": kind, "calls": calls, "n_calls": len(rec.calls), **meta})
        return result

    # LLM decodes (README §L.3): greedy, seeded RAS, and the corrected min_len mask
    llm_case = {"text": case["text"][0], "prompt_text": case["prompt_text"][0],
                "prompt_speech_tokens": case["llm_prompt_speech_token"][0]}
    for name, kw in [("llm_greedy", {}), ("llm_ras_seed7", {"sampling": "ras", "seed": 7}),
                     ("llm_ras_seed123_corrected", {"sampling": "ras", "seed": 123, "upstream_quirks": False})]:
        g = record(name, "llm", lambda r, kw=kw: llm_generate.generate(r, llm_c, **llm_case, **kw),
                   settings={"sampling": kw.get("sampling", "greedy"), "seed": str(kw.get("seed", 0)),
                             "upstream_quirks": kw.get("upstream_quirks", True)},
                   case=_arrays(store, {k: np.asarray(v, np.int32) for k, v in llm_case.items()}))
        out[-1].update(tokens=list(g.tokens), stop_token=g.stop_token, min_len=g.min_len, max_len=g.max_len,
                       tokens_for_flow=list(g.tokens_for_flow))

    # Flow Euler/CFG (README F.4-F.7): non-streaming and streaming with finalize=False
    tokens = np.asarray(llm_generate.generate(pipe.runners, llm_c, **llm_case).tokens_for_flow[:20], np.int32)[None]
    for name, streaming, finalize, consts in [("flow_full", False, True, flow_c),
                                              ("flow_stream_not_final", True, False, flow_c)]:
        flow_args = {"token": tokens, "prompt_token": case["flow_prompt_speech_token"],
                     "prompt_feat": case["prompt_speech_feat"], "embedding": case["flow_embedding"]}
        trace: list = []
        mel = record(name, "flow", lambda r, a=flow_args, s=streaming, f=finalize, tr=trace, c=consts: euler_cfg.synthesize(
            r, c, pipe.data[c["noise"]], *a.values(), streaming=s, finalize=f, trace=tr),
            settings={"streaming": streaming, "finalize": finalize}, case=_arrays(store, flow_args),
            t_after=t_after(consts))
        assert [float(inp["t"][0]) for inp, _ in trace[1:]] == out[-1]["t_after"][:-1]  # replicated = the loop's t
        out[-1]["mel"] = store.put(mel)

    # Whole tts() runs (synth.py): the pipeline golden's case and settings, RAS, streaming
    # the streaming run speaks a longer text (the golden's repeated), so that it emits several hops' chunks
    long_case = dict(case, text=np.tile(case["text"], (1, 6)))
    for name, settings, c in [
            (golden["name"], golden["settings"], case),
            ("tts_ras_seed11", {"sampling": "ras", "seed": 11, "stream": False, "upstream_quirks": True}, case),
            ("tts_stream_greedy", {"sampling": "greedy", "stream": True, "upstream_quirks": True}, long_case)]:
        res = record(name, "tts", lambda r, s=settings, c=c: synthesize(
            Pipeline(r, pipe.constants, pipe.data), c, sampling=s["sampling"], seed=s.get("seed"), stream=s["stream"],
            upstream_quirks=s["upstream_quirks"]), settings={**settings, "seed": str(settings.get("seed") or 0)},
            case=_arrays(store, c), pipeline_golden=name == golden["name"])
        out[-1].update(outputs=_arrays(store, res), tokens=res["speech_tokens"][0].tolist())
    return out


def t_after(constants: Mapping[str, Any]) -> list[float]:
    """t after each Euler step, accumulated in float32 as euler_cfg does (not read from the grid)."""
    t_span, n = np.asarray(constants["t_span"], F32), int(constants["n_timesteps"])
    t, dt, ts = t_span[0], F32(t_span[1] - t_span[0]), []
    for step in range(1, n + 1):
        t = F32(t + dt)
        ts.append(float(t))
        if step < n:
            dt = F32(t_span[step + 1] - t)
    return ts


def write_host_vectors(out: Path, bundle: Path) -> dict[str, Any]:
    """All vectors under ``out`` (index.json + blobs/ + replays/); ``bundle``: a tiny bundle with llm, flow, hift."""
    store = Store(out)
    manifest = json.loads((bundle / "manifest.json").read_text())
    llm_c = next(c for c in manifest["components"] if c["name"] == "llm")["constants"]
    index = {"bundle": str(bundle), "pcg64": pcg64_vectors(), "ras": ras_vectors(store, llm_c),
             "log_softmax": log_softmax_vectors(store), "mt": mt_vectors(store), "silent": silent_vectors(llm_c),
             "silent_constants": {"silent_tokens": llm_c["silent_tokens"], "max_silent_run": llm_c["max_silent_run"]},
             "ras_params": llm_c["sampling"], "replays": replay_vectors(store, bundle, manifest)}
    (out / "index.json").write_text(json.dumps(index, indent=1))
    return index
