"""Kubernetes deployment assets; `python -m deploy.render` regenerates the generated files."""
