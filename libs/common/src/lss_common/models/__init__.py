"""msgspec models: the five CRDs, trimmed core-object views, and the NATS message schemas.

Pure data: no I/O and no imports from the rest of lss_common except ``models`` itself.
"""
