"""LLMSafeSpace developer tooling: the local platform and its pytest fixtures.

Not imported by any service: the runtime import graph never reaches ``lss_dev``.
"""
