"""Reading: what a client sees of jobs, one or a page, found by filter.

================  ================================================================================
``resource``      the job resource, from what RQ stores; public statuses, errors
``listing``       ``GET /jobs`` pages and cursors
``search``        the job index walked in bounded batches: id prefix, metadata, error type
``dashboard``     what rq-dashboard needs to read offload's jobs
================  ================================================================================
"""
