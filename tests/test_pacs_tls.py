"""`xrayviewer listen --tls-cert/--tls-key/--tls-ca`: DICOM over TLS answers a caller with a certificate signed by
the CA and no one who speaks plain DICOM or has no certificate."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from test_pacs import ListenerProcess, free_port

OPENSSL = shutil.which("openssl")


def certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    if OPENSSL is None:
        pytest.skip("openssl not found: no certificate can be made for the TLS test")
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def echo(port: int, context: ssl.SSLContext | None) -> bool:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title="XRVTEST")
    ae.acse_timeout = ae.network_timeout = ae.connection_timeout = 5
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="XRAYVIEWER", tls_args=(context, "127.0.0.1") if context else None)
    if not assoc.is_established:
        return False
    try:
        return int(assoc.send_c_echo().Status) == 0
    finally:
        assoc.release()


def test_listener_over_tls_serves_only_callers_with_a_certificate_from_the_ca(tmp_path):
    server_cert, server_key = certificate(tmp_path, "server")
    client_cert, client_key = certificate(tmp_path, "client")
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    port = free_port()
    listener = ListenerProcess(env, port, "XRVTEST", options=("--tls-cert", str(server_cert), "--tls-key",
                                                              str(server_key), "--tls-ca", str(client_cert)))
    try:
        trusted = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=server_cert)
        trusted.load_cert_chain(client_cert, client_key)
        assert echo(port, trusted)
        anonymous = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=server_cert)
        assert not echo(port, anonymous)  # no client certificate
        assert not echo(port, None)  # plain DICOM
        assert listener.process.poll() is None
    finally:
        assert listener.stop() == 0
