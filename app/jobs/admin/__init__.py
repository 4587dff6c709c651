"""Administration: acting on many jobs and on queues, and the figures of the page's charts.

================  ================================================================================
``bulk``          retry, cancel, delete by filter, safe while workers run
``queues_admin``  pausing and resuming queues; per-queue depths and workers
``timeseries``    per-minute counts per queue, for the page's charts
================  ================================================================================
"""
