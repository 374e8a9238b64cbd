"""Search spaces: one module per space, each exposing build_model(hp)."""
