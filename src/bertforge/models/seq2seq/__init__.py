"""The encoder-decoder Transformer (Vaswani et al. 2017) and its decoding (greedy, beam, KV cache)."""
