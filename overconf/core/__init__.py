"""Base layer: what every other layer may use and that imports nothing of overconf above it.

errors (the error types), names (the torch-free table of registered names), yamlio (YAML 1.2
reading), registry (the ``Registry`` class of every family), seeding (explicit seeded
generators), device (device choice, the autocast / precision policy), cache (the content-keyed,
atomic, checksummed cache), checks (the input rules of the public Python API). Kept free of
imports here so that ``overconf.config`` stays torch-free.
"""
