"""The search parameters of ``GET /jobs``: ``id_prefix``, ``metadata_key`` and ``metadata_value``
(together: that key with that value; alone: has that key, or some key has that value), and
``error_type``, checked here and handed to ``JobQueue.search`` (the walk and its cost:
:mod:`app.jobs.reading.search`).

Without any of them ``GET /jobs`` is the plain listing, unchanged; with one, the listing's own
filters (``status``, ``type``, ``queue``), ``limit`` and ``cursor`` apply as before, and a page
may be short (even empty) with a ``next`` link when the request met its scan budget.
"""

from __future__ import annotations

import re

from werkzeug.datastructures import MultiDict

from ..jobs import bulk_schemas, schemas

SEARCH_PARAMETERS = ("id_prefix", "metadata_key", "metadata_value", "error_type")
ID_PREFIX_PATTERN = schemas.JOB_ID_PATTERN  # a prefix of an id has an id's form
METADATA_KEY_PATTERN = r"^[^\x00-\x1f]{1,64}$"
METADATA_VALUE_MAX = 256
ERROR_TYPE_PATTERN = bulk_schemas.ERROR_TYPE_PATTERN  # the one pattern, the bulk filter's

#: The search parameters as the document declares them (``GET /jobs``, app/web/jobs.py).
SEARCH_QUERY = (
    {
        "name": "id_prefix",
        "in": "query",
        "description": "Only jobs whose id starts with this.",
        "schema": {"type": "string", "pattern": ID_PREFIX_PATTERN},
    },
    {
        "name": "metadata_key",
        "in": "query",
        "description": "With `metadata_value`: only jobs whose `metadata` has this key with that value. Alone: "
        "only jobs whose `metadata` has this key.",
        "schema": {"type": "string", "pattern": METADATA_KEY_PATTERN},
    },
    {
        "name": "metadata_value",
        "in": "query",
        "description": "With `metadata_key`: see there. Alone: only jobs with some `metadata` key of this value. "
        'A value that is not a string is compared as its compact JSON (`1234`, `true`, `{"a":1}`).',
        "schema": {"type": "string", "maxLength": METADATA_VALUE_MAX},
    },
    {
        "name": "error_type",
        "in": "query",
        "description": "Only jobs whose `error.type` is this (`RuntimeError`, `JobTimeout`, `WorkerDied`...).",
        "schema": {"type": "string", "pattern": ERROR_TYPE_PATTERN},
    },
)
SEARCH_NOTE = (
    f" With a search parameter (`id_prefix`, `metadata_key`, `metadata_value`, `error_type`) the server walks "
    f"the job index newest first, {schemas.SEARCH_BATCH} entries a round trip, and one request looks at "
    f"{schemas.SEARCH_SCAN_BUDGET} entries at most: a page may then be short, even empty, and still have a `next` "
    "to go on from."
)


def search_parameters(args: MultiDict) -> tuple[dict[str, str | None] | None, list[dict]]:
    """The search parameters the query gives, for ``JobQueue.search`` (None: no search parameter,
    the plain listing), and their errors."""
    if not any(name in args for name in SEARCH_PARAMETERS):
        return None, []
    errors = []
    id_prefix = args.get("id_prefix")
    if id_prefix is not None and not re.fullmatch(ID_PREFIX_PATTERN, id_prefix):
        errors.append({"field": "id_prefix", "message": "1 to 64 of A-Z a-z 0-9 _ -"})
    key, value = args.get("metadata_key"), args.get("metadata_value")
    if key is not None and not re.fullmatch(METADATA_KEY_PATTERN, key):
        errors.append({"field": "metadata_key", "message": "1 to 64 characters, no control characters"})
    if value is not None and len(value) > METADATA_VALUE_MAX:
        errors.append({"field": "metadata_value", "message": f"at most {METADATA_VALUE_MAX} characters"})
    error_type = args.get("error_type")
    if error_type is not None and not re.fullmatch(ERROR_TYPE_PATTERN, error_type):
        errors.append({"field": "error_type", "message": "an error type such as ValueError or JobTimeout"})
    found = {"id_prefix": id_prefix, "metadata_key": key, "metadata_value": value, "error_type": error_type}
    return found, errors
