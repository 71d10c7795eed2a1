"""TLS for the emulator: a throwaway CA made with trustme, a server certificate for
``127.0.0.1``/``localhost``/``::1``, and the CA written to a PEM file clients can trust
(``NODE_EXTRA_CA_CERTS`` for node-agent-sdk, ``ssl=<path>`` for the Python SDK)."""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme


class EmulatorTLS:
    """The CA and server context of one emulator instance."""

    def __init__(self, directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")) -> None:
        self.ca = trustme.CA(organization_name="lpm emulator")
        self.cert = self.ca.issue_cert(*hosts)
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = directory / "lpm-emulator-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(ctx)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx
