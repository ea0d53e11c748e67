"""``multipart/form-data`` bodies for the uploads the platforms take as files (Shopify's
staged upload targets, Etsy's listing images)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FilePart:
    field: str
    filename: str
    content_type: str
    content: bytes


def form_data(fields: Sequence[tuple[str, str]], file: FilePart | None = None) -> tuple[bytes, str]:
    """The body and its Content-Type: ``fields`` first, the file (if any) last (storage hosts
    ignore fields after the file). Quotes and line breaks in a file name are dropped."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields:
        disposition = f'Content-Disposition: form-data; name="{name}"'
        parts.append(f"--{boundary}\r\n{disposition}\r\n\r\n{value}\r\n".encode())
    if file is not None:
        safe = file.filename.translate({ord(c): None for c in '"\r\n'}) or "file"
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{file.field}"; '
            f'filename="{safe}"\r\nContent-Type: {file.content_type}\r\n\r\n'.encode()
            + file.content
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
