"""Training: the one loop (`trainer`), its checkpoint state, learning-rate schedules."""
