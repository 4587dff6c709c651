"""The contract: what a client may send and what it gets back, as pydantic models.

They change when the HTTP contract does (docs/api.md, the OpenAPI document generated from them),
and with nothing else: no Redis, no RQ here.

===================  ===========================================================================
``schemas``          a job: the request (:class:`~.schemas.JobOptions`), the resource, its links,
                     problems; patterns and limits
``batch_schemas``    ``POST /jobs/batch``: the request and the batch resource
``bulk_schemas``     ``POST /jobs/bulk``: the action, its filter, the outcome
``schedule_schemas`` ``/schedules``: a schedule's request, patch and resource
===================  ===========================================================================
"""

from . import schemas

__all__ = ["schemas"]
