"""The RQ engine: the one package that knows RQ's private API and how RQ stores a job.

Everything else in offload speaks to RQ through its public API, or through this package. When RQ
changes a private name or its storage format, this package (and its tests in
``tests/jobs/engine/``, one per private name or storage fact) is where it shows and where it is
mended (docs/architecture.md, "Supported RQ versions").

=============  ================================================================================
``job``        :class:`~.job.OffloadJob`, RQ's job class: runs catalog tasks only, validated again;
               the ends of a job in its outcome transaction
``queue``      :class:`~.queue.OffloadQueue`, RQ's queue class, and :class:`~.queue.Dequeue`: the one
               dequeue script of both workers, which never loses a job
``private``    each of RQ's private methods and attributes offload calls, behind a named function
``storage``    RQ's job hash, registries and keys, read and written by hand where RQ's classes
               would cost a round trip a job (search, bulk actions, batches, dependencies)
``submit``     a submission in one round trip: RQ's own writes, recorded, sent with their checks
               in one script (``lua/submit.lua``)
``scripts``    every Lua script offload runs, kept in ``lua/*.lua`` and loaded by name
``worker/``    the worker's RQ classes: RQ's loop with a long-lived work horse (``fast``), RQ's
               forking and simple workers (``forking``), their shared base and maintenance
               (``base``), the horse, the payload kept compressed, the scheduler; a job's life
               around them is the worker layer's (:mod:`app.worker.lifecycle`)
=============  ================================================================================
"""
