"""LLMSafeSpace shared library.

Holds what every service shares (models, NATS bus, Kubernetes access, observability, the
service runtime) and nothing service-specific. Import modules, not names:
``from lss_common.bus import publishing`` then ``publishing.publish(...)``.
"""
