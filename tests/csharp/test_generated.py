"""The C# files generated from the Python side (tests/csharp/generate_tables.py) are committed as the generator
writes them, so the C# runtime cannot drift from schemas/voice.schema.json or from the text frontend's constants."""
from __future__ import annotations

import json
import re

from tests.csharp import generate_tables as gen


def test_committed_files_are_the_generators_output() -> None:
    outputs = gen.outputs()
    assert len(outputs) == 2
    for path, text in outputs.items():
        assert path.is_file(), f"{path}: missing (run python -m tests.csharp.generate_tables)"
        assert path.read_text(encoding="utf-8") == text, f"{path}: stale (run python -m tests.csharp.generate_tables)"
        assert (path.parent / (path.name + ".meta")).is_file(), path
    assert gen.main(["--check"]) == 0


def test_embedded_schema_is_the_schema_file() -> None:
    """Undo the C# string escaping: the constant is the schema file's text, character for character."""
    text = gen.schemas_cs()
    body = text.split("public const string Voice =", 1)[1].split(";\n", 1)[0]
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', body)
    decoded = "".join(json.loads(f'"{p}"') for p in parts)  # the escapes written are a subset of JSON's
    assert decoded == (gen.REPO / "schemas" / "voice.schema.json").read_text(encoding="utf-8")


def test_frontend_constants_come_from_python() -> None:
    from packager.frontend import text as text_frontend
    from packager.frontend import text_tokenizer, voicepack

    text = gen.frontend_cs()
    for name, value in (("TokenMaxN", text_frontend.TOKEN_MAX_N), ("TokenMinN", text_frontend.TOKEN_MIN_N),
                        ("MergeLen", text_frontend.MERGE_LEN)):
        assert f"public const int {name} = {value};" in text
    assert f'public const string SystemPrompt = "{voicepack.SYSTEM_PROMPT}";' in text
    assert f'public const string EndOfPrompt = "{text_tokenizer.ENDOFPROMPT}";' in text


def test_no_hand_copied_values_left_in_the_csharp() -> None:
    runtime = gen.RUNTIME
    hand = [p for p in runtime.rglob("*.cs") if not p.name.endswith(".g.cs")]
    for p in hand:
        text = p.read_text(encoding="utf-8")
        assert '"You are a helpful assistant.' not in text and '"<|endofprompt|>"' not in text, p
        text = re.sub(r'(Component\(|Name [!=]= )"(campplus|llm|flow|hift)"', "", text)  # component names, not graphs
        assert not re.search(r"\b(16000|24000)\b", text), f"{p}: a literal sample rate (read it from the manifest)"
        assert not re.search(r'"(llm_text_embed|llm_speech_embed|llm_step|flow_frontend|flow_estimator|campplus_fbank|'
                             r'campplus|hift)"', text), f"{p}: a graph name (read it from constants.graphs)"
