"""Encoders and vector indexes; knows nothing of organisations or the matcher."""
