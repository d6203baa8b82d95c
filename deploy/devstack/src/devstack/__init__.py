"""The platform on one machine without Docker, for development, demos, tests and evals."""
