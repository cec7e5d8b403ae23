"""Kubernetes access through kubernetes_asyncio, returning lss_common models.

This is not a general Kubernetes client: it offers the few operations the services need and
translates API errors into lss_common.errors at the boundary.
"""
