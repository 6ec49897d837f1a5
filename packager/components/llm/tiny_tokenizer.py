"""The tiny preset's text tokenizer: a small byte-level BPE in the HF file format of ``CosyVoice-BlankEN/``.

The tiny preset has random weights, but its bundle should be driven like a real one (``synth --text`` / the C#
``Qwen2Tokenizer.FromBundle``), so it gets a real, if small, tokenizer. It is made here, deterministically, by our
own BPE trainer on a built-in English corpus (``CORPUS``), and written as the three files a Qwen2 checkpoint ships:

* ``vocab.json``: the 256 single-byte tokens in GPT-2's byte-level order (ids 0..255), then one entry per merge;
* ``merges.txt``: ``#version: 0.2`` and one ``left right`` line per merge, by rank;
* ``tokenizer_config.json``: ``added_tokens_decoder`` with ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>`` on the
  three ids right after the BPE entries (as Qwen2 has them at 151643..151645).

``tiny_tokenizer()`` loads those files with ``Qwen2Tokenizer.from_folder`` plus CosyVoice3's 280 specials: the code
path of a real checkpoint. Sizes: 256 + ``TINY_MERGES`` (487) BPE entries + 3 file specials (743..745) + the 278
CosyVoice3 specials the files lack (746..1023) = 1024 ids, exactly the tiny LLM's text embedding (``TINY.text_vocab``);
``<|endofprompt|>`` = 746, ``[ǜ]`` = 1023.

Trainer (``train_bpe``): the corpus is NFC-normalised and split with our Qwen2 pre-tokenizer (``pretokenize``), so no
merge crosses a piece boundary the encoder would cut; each piece starts as its UTF-8 bytes (byte-level symbols).
Then, ``n_merges`` times: count adjacent symbol pairs over all pieces (weighted by piece frequency), take the most
frequent pair (ties: the smaller (left, right) by code point order), replace its non-overlapping occurrences left to
right. Encoding a corpus piece with the merges by rank gives back the training segmentation.
"""
from __future__ import annotations

import json
import tempfile
import unicodedata
from collections import Counter
from functools import lru_cache
from pathlib import Path

from packager.frontend.text_tokenizer import (COSYVOICE3_SPECIALS, MERGES_FILE, TOKENIZER_CONFIG, VOCAB_FILE, Qwen2Tokenizer,
                                     bytes_to_unicode, merge_pair, pretokenize)

TINY_MERGES = 487
TINY_VOCAB = 1024  # all ids: 256 bytes + 487 merges + 3 file specials + 278 new CosyVoice3 specials
FILE_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# Ordinary English sentences (written for this file), the words the number speller produces, digits, punctuation.
CORPUS = """\
You are a helpful assistant. Hello from Unity! How are you today? I am fine, thank you, and I hope you are well.
The quick brown fox jumps over the lazy dog. A small bird sings in the garden every morning before the sun rises.
We walked along the river and talked about the weather, the news and the long summer holidays that were coming.
She opened the window, looked at the clouds and said that it would probably rain in the afternoon.
My brother likes to read books about history, science and travel; my sister prefers music and painting.
Please speak slowly and clearly, so that everyone in the room can understand what you are saying.
This is a test of the text to speech system. It should sound natural, friendly and calm.
When the train arrived at the station, the people on the platform picked up their bags and stepped inside.
There is a little shop at the corner of our street where they sell fresh bread, cheese, fruit and flowers.
Could you tell me the way to the museum? Yes, of course: go straight ahead, then turn left at the bridge.
The children played in the park until it was dark, and then they ran home for dinner with their parents.
Good morning, everyone. Today we will learn how sound travels through the air and why voices are different.
I think it's a good idea, but we'll need more time. They're ready now, aren't they? Don't worry, it's fine.
He wrote a short letter to his friend, put it in an envelope and walked to the post office before noon.
Water boils at one hundred degrees, and it freezes at zero. The moon goes around the earth once a month.
Our team finished the project on time, because everybody worked hard and helped each other when it mattered.
What a beautiful day! The sky is blue, the grass is green, and the air smells of spring and warm sunshine.
If you have any questions, just ask. We are always happy to help, and there is no such thing as a silly question.
Numbers: zero, one, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve, thirteen, fourteen,
fifteen, sixteen, seventeen, eighteen, nineteen, twenty, thirty, forty, fifty, sixty, seventy, eighty, ninety,
one hundred and one, two thousand and twenty-four, three million, four billion, five trillion, point seven.
I have twenty-three apples, forty-five oranges and sixty-seven lemons; that makes one hundred and thirty-five.
Digits 0 1 2 3 4 5 6 7 8 9, 10, 42, 100, 2024 and 3.14; prices such as $5.99 or 12% off; times like 10:30.
Punctuation: commas, full stops. Questions? Exclamations! Semicolons; colons: dashes - and "quotes" (brackets).
The old man smiled, nodded and said: "Thank you very much, young lady. You have been very kind to me."
In the evening we sat by the fire, drank hot tea and listened to the wind outside the house.
Learning a new language takes patience, practice and a lot of listening, but it is worth every minute.
The doctor told him to sleep more, eat more vegetables and take a walk every day after lunch.
At the end of the story, the little boat found its way back to the harbour, and everybody cheered.
"""


def corpus() -> str:
    return CORPUS


def train_bpe(text: str, n_merges: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocab, merges) of a byte-level BPE trained on ``text`` (module docstring). Vocab ids: the 256 byte symbols in
    GPT-2's order, then each new merge result in merge order. Stops early when no pair is left."""
    byte_map = bytes_to_unicode()
    vocab = {ch: i for i, ch in enumerate(byte_map.values())}
    counts = Counter(pretokenize(unicodedata.normalize("NFC", text)))
    words = [[list(byte_map[b] for b in piece.encode("utf-8")), n] for piece, n in sorted(counts.items())]
    merges: list[tuple[str, str]] = []
    while len(merges) < n_merges:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, n in words:
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = best[0] + best[1]
        vocab.setdefault(merged, len(vocab))
        for word in words:
            word[0] = merge_pair(word[0], best, merged)
    return vocab, merges


def write_tiny_tokenizer(folder: Path) -> Path:
    """Write ``vocab.json``, ``merges.txt`` and ``tokenizer_config.json`` of the tiny tokenizer into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = train_bpe(CORPUS, TINY_MERGES)
    first = max(vocab.values()) + 1
    decoder = {str(first + k): {"content": c, "lstrip": False, "normalized": False, "rstrip": False,
                                "single_word": False, "special": True} for k, c in enumerate(FILE_SPECIALS)}
    config = {"add_prefix_space": False, "added_tokens_decoder": decoder,
              "additional_special_tokens": list(FILE_SPECIALS[1:]), "bos_token": None,
              "clean_up_tokenization_spaces": False, "eos_token": FILE_SPECIALS[0], "errors": "replace",
              "model_max_length": 32768, "pad_token": FILE_SPECIALS[0], "split_special_tokens": False,
              "tokenizer_class": "Qwen2Tokenizer", "unk_token": None}
    (folder / VOCAB_FILE).write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / MERGES_FILE).write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    (folder / TOKENIZER_CONFIG).write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return folder


@lru_cache(maxsize=1)
def _load() -> Qwen2Tokenizer:
    with tempfile.TemporaryDirectory(prefix="tiny_tokenizer_") as tmp:
        return Qwen2Tokenizer.from_folder(write_tiny_tokenizer(Path(tmp)), COSYVOICE3_SPECIALS)


def tiny_tokenizer() -> Qwen2Tokenizer:
    """The tiny preset's tokenizer with CosyVoice3's 280 specials, loaded from its files (a fresh copy each call)."""
    return Qwen2Tokenizer.from_tables(_load().to_tables())
