"""Operations tooling: generators for deploy/ (``python -m tools.ops.generate``)."""
