"""Tasks: what a user does with a model (question answering, classification, pre-training, translation,
sentence embedding), each on top of `models/`, `data/` and `training/`."""
