"""Text and audio in front of the graphs: text normalization and tokenizers, features, audio I/O, the speech
tokenizer, voice packs."""
