"""The test suite; it mirrors the package (tests/models/bert/ tests src/bertforge/models/bert/, ...)."""
