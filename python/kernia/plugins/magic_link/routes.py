"""Kernia's ``kernia.plugins.magic_link.routes``: the hash the engine stores a link's
token under with ``store_token="hashed"``, for apps and tests that look the row up."""

from __future__ import annotations

import base64
import hashlib


def default_key_hasher(token: str) -> str:
    """The SHA-256 of ``token``, unpadded base64url (Better Auth's ``defaultKeyHasher``)."""
    digest = hashlib.sha256(token.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


__all__ = ["default_key_hasher"]
