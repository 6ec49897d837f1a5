"""The llm component's text tokenizer at build time: the checkpoint's ``CosyVoice-BlankEN`` tokenizer (or the tiny
preset's own, ``packager/components/llm/tiny_tokenizer.py``) turned into the bundle's ``text_tokenizer_*`` tables and constants.
The tokenizer itself (what a runtime runs on those tables) is ``packager/frontend/text_tokenizer.py``.
"""
from __future__ import annotations

from typing import Any

from packager.build.component import HostData
from packager.contract.errors import CheckpointError
from packager.frontend.text_tokenizer import (COSYVOICE3_SPECIALS, ENDOFPROMPT, MERGES_FILE, NO_TOKENIZER,
                                     TABLE_DESCRIPTIONS, TOKENIZER_CONFIG, TOKENIZER_DIR, TOKENIZER_JSON, VOCAB_FILE,
                                     Qwen2Tokenizer)
from packager.components.llm.tiny_tokenizer import tiny_tokenizer


# the id upstream CosyVoice3LM.inference asserts in the text (design/cosyvoice3.md §2.1): a checkpoint's full Qwen2
# vocabulary must give <|endofprompt|> exactly this id (smaller vocabularies, e.g. the tiny preset, have their own)
UPSTREAM_ENDOFPROMPT_ID = 151646


def load_checkpoint_tokenizer(source: Any) -> Qwen2Tokenizer | None:
    """The checkpoint's ``CosyVoice-BlankEN`` tokenizer plus CosyVoice3's specials; for the tiny preset its own small
    tokenizer (packager/components/llm/tiny_tokenizer.py, loaded through the same files); None when a checkpoint has no files."""
    if source.is_preset:
        return tiny_tokenizer()
    folder = source.checkpoint / TOKENIZER_DIR
    names = [n for n in (VOCAB_FILE, MERGES_FILE, TOKENIZER_JSON, TOKENIZER_CONFIG) if (folder / n).is_file()]
    if not names:
        return None
    for n in names:
        source.path(f"{TOKENIZER_DIR}/{n}")  # records the file (sha256, bytes) in the manifest's source section
    return Qwen2Tokenizer.from_folder(folder, COSYVOICE3_SPECIALS)


def bundle_tokenizer(source: Any, text_vocab: int) -> tuple[list[Any], dict[str, Any]]:
    """(HostData tables, ``text_tokenizer`` constants) for the llm component; no tables when there is no tokenizer.

    ``<|endofprompt|>`` must get an id the text embedding has, and exactly 151646 for a full-size vocabulary
    (upstream's assert); smaller vocabularies (the tiny preset's 1024 text ids) only need every id in range.
    """
    tok = load_checkpoint_tokenizer(source)
    if tok is None:
        return [], dict(NO_TOKENIZER)
    eop = tok.token_id(ENDOFPROMPT)
    top = max([int(tok.merges[:, 2].max(initial=0)), int(tok.byte_ids.max()), *(t.id for t in tok.added)])
    where = f"{TOKENIZER_DIR}/"
    if top >= text_vocab:
        raise CheckpointError("token ids exceed the LLM text embedding", file=where, expected=f"ids < {text_vocab}",
                              found=str(top))
    if text_vocab > UPSTREAM_ENDOFPROMPT_ID and eop != UPSTREAM_ENDOFPROMPT_ID:
        raise CheckpointError(f"{ENDOFPROMPT} gets the wrong id", file=where, expected=str(UPSTREAM_ENDOFPROMPT_ID),
                              found=str(eop))
    data = [HostData(f"text_tokenizer_{k}", v, TABLE_DESCRIPTIONS[k]) for k, v in tok.to_tables().items()]
    consts = {"available": True, "kind": "qwen2_byte_bpe", "normalization": "NFC",
              "data": [d.name for d in data], "endofprompt_id": eop,
              "special_tokens": {t.content: t.id for t in tok.added if t.special},
              "prompt_text_must_end_with": ENDOFPROMPT}
    return data, consts
