"""Looking inside trained models: what attention heads do and what each one is worth (docs/heads.md)."""
