"""The API's request and response models: what ``/openapi.json`` shows, and the one place that shapes
what leaves the server.

Routes return these models; they are built from ORM rows and service objects with ``from_attributes``
(``SessionOut.model_validate(row)``), so no route serialises by hand. Timestamps are written with
:meth:`datetime.isoformat`, as they always were. ``/v1`` speaks OpenAI's shapes (:mod:`.openai`).
"""
