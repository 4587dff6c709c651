"""Submitting: new jobs written, one (``POST /jobs``) or many (``POST /jobs/batch``).

What changes when what a submission checks or writes does: its idempotency, its dependencies,
its batch. The writes themselves, in RQ's storage format, are the engine's
(:mod:`app.jobs.engine`).

================  ================================================================================
``submission``    drafts (the RQ job for a validated request) and their write, one or a batch
``idempotency``   ``Idempotency-Key`` claims and replays
``dependencies``  ``depends_on``: checks at submission; failing the dependents of a job that
                  will never finish
``batches``       the batch record, its counts, its callback once its last job has ended
================  ================================================================================
"""
