"""Evaluation metrics, one module per task family (squad.py: the official SQuAD v1.1/v2.0 EM/F1)."""
