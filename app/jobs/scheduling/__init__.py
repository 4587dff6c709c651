"""Periodic schedules: stored, ticked, each due tick started once.

================  ================================================================================
``schedules``     schedules in Redis: create, look up, list, change, delete
``ticker``        running them: each due tick claimed once, with its job
``cadence``       cron (UTC) and interval ticks, pure functions of a moment
================  ================================================================================
"""
