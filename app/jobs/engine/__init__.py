"""The RQ engine: the one package that knows RQ's private API and how RQ stores a job.

Everything else in offload speaks to RQ through its public API, or through this package. When RQ
changes a private name or its storage format, this package (and its tests in
``tests/jobs/engine/``, one per private name) is where it shows and where it is mended.

=============  ================================================================
``scripts``    every Lua script offload runs, kept in ``lua/*.lua`` and loaded by name
=============  ================================================================
"""
