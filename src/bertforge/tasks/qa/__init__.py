"""Extractive question answering (Devlin et al. 2019, 4.2; D6): the answerer, span decoding, fine-tuning."""
