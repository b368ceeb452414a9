"""The tenant's certificate store: trust anchors, its own GWA identity (keys encrypted at rest),
EMT and gateway certificates, revocation status. Validation itself lives in ``pki/``."""
