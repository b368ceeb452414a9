"""A minimal DER writer for the fixed CMS structures gridgate seals (pki.cms_signed,
pki.cms_enveloped): tag-length-value concatenation, nothing parsed.

Building these few structures through asn1crypto's object model cost more than the brainpool
operations inside them (about 1 ms per seal against 0.7 ms of ECDSA and ECDH, docs/benchmarks.md
"PKI"); every admin command seals twice, once at each end. Reading stays with asn1crypto, whose
strict parser checks what peers send. ``tests/pki/test_pki_der.py`` holds the writer to
asn1crypto's encoding of the same values, byte for byte.
"""

from __future__ import annotations

import functools


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(len(content)) + content


def content_of(encoded: bytes) -> bytes:
    """The content octets of one DER value (to re-tag it, e.g. a SET OF as ``[0] IMPLICIT``)."""
    first = encoded[1]
    return encoded[2 + (first & 0x7F if first & 0x80 else 0):]


def seq(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


def set_of(*parts: bytes) -> bytes:
    """SET OF: DER orders the elements by their encodings (X.690 11.6)."""
    return tlv(0x31, b"".join(sorted(parts)))


def octets(value: bytes) -> bytes:
    return tlv(0x04, value)


def bit_string(value: bytes) -> bytes:
    """A BIT STRING of whole octets (no unused bits)."""
    return tlv(0x03, b"\x00" + value)


def integer(n: int) -> bytes:
    if n < 0:
        raise ValueError("only non-negative INTEGERs are written here")
    return tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))


def explicit(n: int, content: bytes) -> bytes:
    """``[n] EXPLICIT`` around an encoded value, or an ``[n] IMPLICIT`` constructed type given
    its content octets (same bytes)."""
    return tlv(0xA0 | n, content)


def implicit_primitive(n: int, content: bytes) -> bytes:
    """``[n] IMPLICIT`` of a primitive type (e.g. OCTET STRING), given its content octets."""
    return tlv(0x80 | n, content)


@functools.lru_cache(maxsize=256)
def oid(dotted: str) -> bytes:
    return tlv(0x06, oid_content(dotted))


def oid_content(dotted: str) -> bytes:
    """The content octets of an OBJECT IDENTIFIER (no tag, no length), base-128 arcs."""
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39):
        raise ValueError(f"not an object identifier: {dotted!r}")
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return bytes(body)


def algorithm(dotted: str, parameters: bytes | None = None) -> bytes:
    """AlgorithmIdentifier; ``parameters`` already encoded, or absent."""
    return seq(oid(dotted), parameters or b"")
