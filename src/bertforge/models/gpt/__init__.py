"""GPT: the decoder-only language model (config, model, HF GPT-2 checkpoints, generation)."""
