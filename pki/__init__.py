"""SM-PKI for gridgate: the one place that validates certificates, checks revocation, seals and
opens CMS containers, signs wake-up packets and builds TLS contexts (BSI TR-03109 / TR-03116-3).

Public API (see docs/pki.md for signatures): ``pki.testpki``, ``pki.validation``, ``pki.crl``,
``pki.wakeup``, ``pki.tls``, ``pki.cms``, ``pki.importing``, ``pki.ids``, ``pki.testca``.
"""
