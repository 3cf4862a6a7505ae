"""BERT (Devlin et al. 2019): config, encoder, task heads, pre-training heads, HF-layout checkpoints."""
