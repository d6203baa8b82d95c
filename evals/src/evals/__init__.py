"""Evaluation runner, benchmarks and stack fixtures."""
