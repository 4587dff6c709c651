"""``make bench``: offload's performance harness (see ``bench/run.py`` and ``bench/FINDINGS.md``)."""
