"""The CosyVoice3 LLM: Qwen2 backbone with KV cache, embeddings, its text tokenizer tables."""
