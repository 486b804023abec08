"""Attachments in the service's own MongoDB, in GridFS's format, written with the command.

Why not `AsyncGridFSBucket.upload_from_stream`: an upload is its own series
of writes, outside the command's transaction, so a command that failed after
it (a refused rule, a conflict, a crash) would leave an orphan file to sweep.
Instead the file's GridFS documents (one `files` document and its chunks, as
the GridFS specification lays them out) are private records of the command's
unit of work: they land in the same transaction as `PieceAttachmentAdded`, or
not at all, and a retried transaction rewrites the same ids. Reading goes
through `AsyncGridFSBucket`, which checks the format (lengths, chunk order).

Nothing is written for a file before `sotay_platform.attachments` accepted
it: the classified-document check works on the bytes in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from bson import Binary
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from sotay_events import UnitOfWork

BUCKET = "attachments"
FILES = f"{BUCKET}.files"
CHUNKS = f"{BUCKET}.chunks"
CHUNK_SIZE = 255 * 1024  # GridFS's default


def stage_file(
    uow: UnitOfWork,
    file_id: str,
    data: bytes,
    *,
    file_name: str,
    media_type: str,
    uploaded_at: datetime,
    metadata: dict[str, Any],
) -> None:
    """Add the file's GridFS documents to `uow`: they commit with its events."""
    chunks = range(0, len(data), CHUNK_SIZE)
    for n, start in enumerate(chunks):
        uow.private(
            CHUNKS,
            {
                "_id": f"{file_id}.{n}",
                "files_id": file_id,
                "n": n,
                "data": Binary(data[start : start + CHUNK_SIZE]),
            },
        )
    uow.private(
        FILES,
        {
            "_id": file_id,
            "length": len(data),
            "chunkSize": CHUNK_SIZE,
            "uploadDate": uploaded_at,
            "filename": file_name,
            "metadata": {"contentType": media_type, **metadata},
        },
    )


class AttachmentFiles:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.bucket = AsyncGridFSBucket(db, bucket_name=BUCKET, chunk_size_bytes=CHUNK_SIZE)

    async def create_indexes(self) -> None:
        # The indexes the bucket would make on its first upload, which never happens here.
        await self.db[CHUNKS].create_index([("files_id", ASCENDING), ("n", ASCENDING)], unique=True)
        await self.db[FILES].create_index([("filename", ASCENDING), ("uploadDate", ASCENDING)])

    async def open(self, file_id: str) -> tuple[int, AsyncIterator[bytes]] | None:
        try:
            stream = await self.bucket.open_download_stream(file_id)
        except NoFile:
            return None

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while chunk := await stream.readchunk():
                    yield chunk
            finally:
                await stream.close()

        return stream.length, chunks()

    async def count(self) -> tuple[int, int]:
        """(files, chunks) stored: what a refused upload must leave unchanged."""
        return (
            await self.db[FILES].count_documents({}),
            await self.db[CHUNKS].count_documents({}),
        )
