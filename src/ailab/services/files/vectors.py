"""Embeddings: an optional second stage of retrieval, through a provider that offers them.

With ``AILAB_FILES_EMBEDDING_MODEL`` (e.g. ``openai/text-embedding-3-small``, ``ollama/nomic-embed-text``)
each chunk's vector is stored beside its text once the text is stored (the file is ``ready`` before: the
full-text search needs no model). Retrieval then blends two rankings by reciprocal rank fusion: the
database's full-text rank and the cosine similarity to the question's vector. A vector made by another
model than the configured one is never compared (it is made again); without the setting, or when the
provider fails, retrieval is full-text alone and says nothing is wrong, since nothing is.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from typing import TypeVar

import numpy as np

from ailab.db.engine import Database
from ailab.db.repos import files as repo
from ailab.errors import AILabError, InvalidInput
from ailab.providers.base import SupportsEmbeddings
from ailab.providers.registry import ProviderRegistry

log = logging.getLogger("ailab.files")
BATCH = 64  # chunks per embedding request
FUSION_K = 60  # reciprocal rank fusion's constant: rank 1 counts 1/61, rank 10 1/70
K = TypeVar("K", bound=Hashable)


def to_blob(vector: Sequence[float]) -> bytes:
    """A vector as stored: float32, scaled to unit length (so a dot product is the cosine)."""
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    return (array / norm if norm else array).tobytes()


def fuse(*rankings: Sequence[K]) -> list[K]:
    """Keys ordered by reciprocal rank fusion of several best-first rankings."""
    scores: dict[K, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking):
            scores[key] = scores.get(key, 0.0) + 1.0 / (FUSION_K + rank + 1)
    return sorted(scores, key=lambda key: -scores[key])


class ChunkEmbedder:
    """Embeds chunks and questions with one configured model."""

    def __init__(self, db: Database, providers: ProviderRegistry, model_id: str) -> None:
        self._db = db
        self._providers = providers
        self.model_id = model_id

    def _provider(self) -> tuple[SupportsEmbeddings, str]:
        provider, model = self._providers.resolve(self.model_id)
        if not isinstance(provider, SupportsEmbeddings):
            raise InvalidInput(f"{provider.name} offers no embeddings (AILAB_FILES_EMBEDDING_MODEL)")
        return provider, model

    async def embed_file(self, file_id: str) -> int:
        """Store vectors for the file's chunks that have none from this model; returns how many."""
        provider, model = self._provider()
        missing = await self._db.run_read(repo.chunks_without_embedding, file_id, self.model_id)
        for start in range(0, len(missing), BATCH):
            batch = missing[start : start + BATCH]
            result = await provider.embed(model, [text for _id, text in batch])
            vectors = [(chunk_id, to_blob(v)) for (chunk_id, _), v in zip(batch, result.vectors, strict=True)]
            await self._db.run_write(repo.store_embeddings, vectors, self.model_id)
        return len(missing)

    async def question(self, text: str) -> np.ndarray | None:
        """The question's unit vector, or None when the provider cannot make one now."""
        try:
            provider, model = self._provider()
            result = await provider.embed(model, [text])
        except AILabError as exc:
            log.warning("embedding a question with %s failed: %s", self.model_id, exc.message)
            return None
        return np.frombuffer(to_blob(result.vectors[0]), dtype=np.float32)

    async def rank_files(self, question: np.ndarray, file_ids: Sequence[str]) -> list[tuple[str, int]]:
        """The (file_id, idx) of the files' embedded chunks, most similar first."""
        rows = await self._db.run_read(repo.file_embeddings, file_ids, self.model_id)
        return rank(question, [((file_id, idx), blob) for file_id, idx, blob in rows])

    async def rank_chunks(self, question: np.ndarray, chunk_ids: Sequence[int]) -> list[int]:
        """Those of ``chunk_ids`` that have a vector, most similar first."""
        rows = await self._db.run_read(repo.chunk_embeddings, chunk_ids, self.model_id)
        return rank(question, rows)


def rank(question: np.ndarray, rows: Sequence[tuple[K, bytes]]) -> list[K]:
    """The keys of ``(key, stored vector)`` rows, most similar to ``question`` first."""
    if not rows:
        return []
    matrix = np.frombuffer(b"".join(blob for _key, blob in rows), dtype=np.float32)
    if matrix.size != len(rows) * question.shape[0]:
        return []  # vectors of another size: a model that changed under the same name
    order = np.argsort(-(matrix.reshape(len(rows), -1) @ question), kind="stable")
    return [rows[i][0] for i in order]
