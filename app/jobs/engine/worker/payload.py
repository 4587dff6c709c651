"""The job's stored payload, kept as read: decompressed only where it is needed.

Mixed into the worker's job class by :func:`payload_keeping` (see the class docstring).
"""

from __future__ import annotations

import zlib
from typing import Any

from rq.job import Job

_PENDING = object()
_EMPTY_PAYLOAD = zlib.compress(b"")


class _KeepsStoredPayload:
    """Job mixin for the stored payload (the zlib-compressed function and arguments).

    * It is decompressed on first use, not on restore: the worker process never needs the
      arguments (only the horse does), and for a 1 MiB text that is ~3 ms saved per job.
    * On save, the payload read from Redis is written back as it was while ``data`` is
      unchanged, instead of being compressed again (RQ saves the whole job on success:
      for a 1 MiB text a zlib pass of ~10 ms)."""

    _stored_payload: bytes | None = None
    _stored_data: Any = None
    _stored_hash: dict | None = None

    def restore(self, raw_data):  # noqa: ANN001, ANN201
        payload = raw_data.get(b"data", raw_data.get("data"))
        if not isinstance(payload, bytes):
            return super().restore(raw_data)  # type: ignore[misc]
        key = b"data" if b"data" in raw_data else "data"
        result = super().restore({**raw_data, key: _EMPTY_PAYLOAD})  # type: ignore[misc]
        self._data = _PENDING  # type: ignore[attr-defined]
        self._stored_payload, self._stored_data = payload, _PENDING
        self._stored_hash = raw_data  # what the horse rebuilds the job from
        return result

    @property
    def data(self) -> bytes:
        if self._data is _PENDING:  # type: ignore[attr-defined]
            try:
                self._data = zlib.decompress(self._stored_payload)  # type: ignore[arg-type,attr-defined]
            except zlib.error:
                self._data = self._stored_payload  # type: ignore[attr-defined] - stored uncompressed (RQ's fallback)
            self._stored_data = self._data  # type: ignore[attr-defined]
        return Job.data.fget(self)  # type: ignore[attr-defined]

    @data.setter
    def data(self, value: bytes) -> None:
        Job.data.fset(self, value)  # type: ignore[attr-defined]

    # RQ builds a new registry object each time one of these is read (a few times a job), and
    # each build checks its serializer against a runtime Protocol, which is slow (~7 us on
    # Python 3.11). A registry holds only its name, connection, job class and serializer, so
    # one object serves every job of a queue (_REGISTRIES, shared by this process's jobs).
    @property
    def started_job_registry(self):  # noqa: ANN201
        return self._registry("started_job_registry")

    @property
    def finished_job_registry(self):  # noqa: ANN201
        return self._registry("finished_job_registry")

    def _registry(self, which: str):  # noqa: ANN202
        key = (which, self.origin, type(self), id(self.connection), id(self.serializer))  # type: ignore[attr-defined]
        registry = _REGISTRIES.get(key)
        if registry is None or registry.connection is not self.connection or registry.serializer is not self.serializer:  # type: ignore[attr-defined]
            if len(_REGISTRIES) >= _REGISTRIES_MAX:
                _REGISTRIES.clear()
            registry = _REGISTRIES[key] = getattr(super(), which)
        return registry

    def to_dict(self, include_meta: bool = True, include_result: bool = True) -> dict:
        payload = self._stored_payload
        if payload is None or self._data is not self._stored_data:  # type: ignore[attr-defined]
            return super().to_dict(include_meta=include_meta, include_result=include_result)  # type: ignore[misc]
        data = self._data  # type: ignore[attr-defined]
        self._data = b""  # compressing nothing costs nothing; the real payload goes back below
        try:
            mapping = super().to_dict(include_meta=include_meta, include_result=include_result)  # type: ignore[misc]
        finally:
            self._data = data
        mapping["data"] = payload
        return mapping


#: The registries of the jobs of this process, by kind, queue, job class, connection and serializer.
_REGISTRIES: dict[tuple, Any] = {}
_REGISTRIES_MAX = 256

_PAYLOAD_KEEPING_CLASSES: dict[type, type] = {}


def payload_keeping(job_class: type[Job]) -> type[Job]:
    if issubclass(job_class, _KeepsStoredPayload):
        return job_class
    if job_class not in _PAYLOAD_KEEPING_CLASSES:
        _PAYLOAD_KEEPING_CLASSES[job_class] = type(job_class.__name__, (_KeepsStoredPayload, job_class), {})
    return _PAYLOAD_KEEPING_CLASSES[job_class]
