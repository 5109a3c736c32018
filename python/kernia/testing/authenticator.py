"""A software WebAuthn authenticator and the browser side of a ceremony.

Real ES256 key pairs (P-256, SHA-256), Ed25519 ones (EdDSA, what Chromium's
authenticator picks when a server offers it first) or RS256 ones (RSA 2048, PKCS#1 v1.5,
what Windows Hello makes), "none" attestation, assertions signed over
``authenticatorData || SHA-256(clientDataJSON)`` like a hardware key, and the JSON the
official client sends (``@simplewebauthn/browser``'s, without ``clientExtensionResults``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cbor(value) -> bytes:
    """The CBOR subset WebAuthn needs: ints, byte and text strings, maps."""

    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        for extra, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
            if n < 1 << (8 * struct.calcsize(fmt)):
                return bytes([major << 5 | extra]) + struct.pack(fmt, n)
        raise ValueError(n)

    if isinstance(value, bool):
        raise TypeError("no booleans needed")
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return head(3, len(raw)) + raw
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(type(value))


FLAG_UP, FLAG_UV, FLAG_BE, FLAG_BS, FLAG_AT = 0x01, 0x04, 0x08, 0x10, 0x40


ES256, EDDSA, RS256 = -7, -8, -257


@dataclass
class Credential:
    id: bytes
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    rp_id: str
    user_handle: bytes
    counter: int = 0

    @staticmethod
    def new_key(algorithm: int) -> ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey:
        if algorithm == EDDSA:
            return ed25519.Ed25519PrivateKey.generate()
        if algorithm == RS256:
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return ec.generate_private_key(ec.SECP256R1())

    def cose_public_key(self) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            raw = self.key.public_key().public_bytes_raw()
            return cbor({1: 1, 3: EDDSA, -1: 6, -2: raw})
        if isinstance(self.key, rsa.RSAPrivateKey):
            rsa_numbers = self.key.public_key().public_numbers()
            n = rsa_numbers.n.to_bytes((rsa_numbers.n.bit_length() + 7) // 8, "big")
            e = rsa_numbers.e.to_bytes((rsa_numbers.e.bit_length() + 7) // 8, "big")
            return cbor({1: 3, 3: RS256, -1: n, -2: e})
        numbers = self.key.public_key().public_numbers()
        return cbor(
            {1: 2, 3: ES256, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
        )

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(data)
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))


@dataclass
class Authenticator:
    """One device holding passkeys; ``origin`` is what its browser puts in clientDataJSON.

    ``algorithm``: the key type it creates (ES256, EDDSA or RS256); ``None`` follows the server's
    ``pubKeyCredParams`` order, as Chromium's authenticator and many security keys do."""

    origin: str = "http://localhost:3000"
    algorithm: int | None = ES256
    aaguid: bytes = bytes(range(16))
    multi_device: bool = False
    counter_step: int = 1
    credentials: list[Credential] = field(default_factory=list)

    def _flags(self, attested: bool) -> int:
        flags = FLAG_UP | FLAG_UV
        if self.multi_device:
            flags |= FLAG_BE | FLAG_BS
        return flags | (FLAG_AT if attested else 0)

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False},
            separators=(",", ":"),
        ).encode()

    def create(self, options: dict, *, origin: str | None = None, rp_id: str | None = None) -> dict:
        """``navigator.credentials.create()`` for the server's registration options."""
        rp = rp_id or options["rp"]["id"]
        offered = [p["alg"] for p in options["pubKeyCredParams"]]
        algorithm = self.algorithm or next(a for a in offered if a in (ES256, EDDSA))
        assert algorithm in offered, f"the server does not offer algorithm {algorithm}"
        cred = Credential(os.urandom(16), Credential.new_key(algorithm), rp, unb64url(options["user"]["id"]))
        cred.counter = 1 if self.counter_step else 0
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([self._flags(attested=True)])
            + struct.pack(">I", cred.counter)
            + self.aaguid
            + struct.pack(">H", len(cred.id))
            + cred.id
            + cred.cose_public_key()
        )
        attestation = cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        self.credentials.append(cred)
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        return {
            "id": b64url(cred.id),
            "rawId": b64url(cred.id),
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal", "hybrid"],
            },
            "type": "public-key",
            "authenticatorAttachment": "platform",
        }

    def get(
        self,
        options: dict,
        *,
        credential: Credential | None = None,
        origin: str | None = None,
        counter: int | None = None,
        tamper: bool = False,
        rp_id: str | None = None,
    ) -> dict:
        """``navigator.credentials.get()``: signs the server's challenge with a passkey."""
        allowed = {c["id"] for c in options.get("allowCredentials", [])}
        cred = credential or next(
            c for c in reversed(self.credentials) if not allowed or b64url(c.id) in allowed
        )
        cred.counter = cred.counter + self.counter_step if counter is None else counter
        auth_data = (
            hashlib.sha256((rp_id or options["rpId"]).encode()).digest()
            + bytes([self._flags(attested=False)])
            + struct.pack(">I", cred.counter)
        )
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = cred.sign(auth_data + hashlib.sha256(client_data).digest())
        if tamper:
            signature = signature[:-1] + bytes([signature[-1] ^ 1])
        return {
            "id": b64url(cred.id),
            "rawId": b64url(cred.id),
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(cred.user_handle),
            },
            "type": "public-key",
            "authenticatorAttachment": "platform",
        }
