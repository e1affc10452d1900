"""A TLS stand-in for wstore and a client that connects to it as the NGINX-Wallarm module would.

The stand-in listens with the server certificate and key that wstore.yaml names, and, with mutual TLS, asks
for a client certificate signed by the CA that wstore.yaml names. The client verifies the server against
the CA and the address it connects to, and presents the client certificate and key that the NGINX file
names. A round trip (ping, then the stand-in's answer) completes the handshake on both sides: with TLS 1.3 a
server refuses a client certificate only after the client's handshake has returned.
"""

from __future__ import annotations

import dataclasses
import datetime
import socket
import ssl
import threading
from pathlib import Path
from typing import Callable, Optional, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

ANSWER = b"wstore-stand-in ok\n"


def _read(path: str) -> Optional[bytes]:
    try:
        return Path(path).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _certificates(data: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        return []


def _public(obj) -> bytes:
    return obj.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def diagnose(role: str, cert: Optional[str] = None, key: Optional[str] = None, ca: Optional[str] = None,
             show: Callable[[str], str] = str, now: Optional[datetime.datetime] = None) -> list[str]:
    """Why these PEM files cannot make a TLS endpoint of `role` ("server", "client"): a file missing, empty or
    truncated, a key that does not match its certificate, a certificate expired or not yet valid, or not issued by
    the CA file. One sentence per cause, files named with show(path); empty when nothing is wrong."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    problems, leaf, authorities = [], None, []
    if ca is not None:
        data = _read(ca)
        authorities = _certificates(data) if data is not None else []
        if data is None:
            problems.append(f"the CA file {show(ca)} is missing")
        elif not authorities:
            problems.append(f"the CA file {show(ca)} holds no complete PEM certificate (empty or truncated?)")
    if cert is not None:
        data = _read(cert)
        found = _certificates(data) if data is not None else []
        if data is None:
            problems.append(f"the {role} certificate {show(cert)} is missing")
        elif not found:
            problems.append(f"the {role} certificate {show(cert)} is not a complete PEM certificate "
                            "(empty or truncated?)")
        else:
            leaf = found[0]
            if leaf.not_valid_after_utc < now:
                problems.append(f"the {role} certificate {show(cert)} expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
            elif leaf.not_valid_before_utc > now:
                problems.append(f"the {role} certificate {show(cert)} is not valid before "
                                f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
            if ca is not None and authorities and not any(_issued_by(leaf, a) for a in authorities):
                problems.append(f"the {role} certificate {show(cert)} is not issued by the CA in {show(ca)} "
                                "(a certificate from another CA?)")
    if key is not None:
        data = _read(key)
        private = None
        if data is not None:
            try:
                private = serialization.load_pem_private_key(data, password=None)
            except (ValueError, TypeError):
                private = None
        if data is None:
            problems.append(f"the {role} key {show(key)} is missing")
        elif private is None:
            problems.append(f"the {role} key {show(key)} is not an unencrypted PEM private key (empty or truncated?)")
        elif leaf is not None and cert is not None and _public(private) != _public(leaf):
            problems.append(f"the {role} key {show(key)} does not match the certificate {show(cert)}")
    return problems


class StandIn:
    """A TLS listener on host:port that answers one line to each client it accepts."""

    def __init__(self, host: str, port: int, cert_file: Optional[str], key_file: Optional[str],
                 client_ca_file: Optional[str]):
        """Without cert_file, a plain TCP listener (wstore with TLS off)."""
        self.context = None
        if cert_file:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.minimum_version = ssl.TLSVersion.TLSv1_2
            self.context.load_cert_chain(cert_file, key_file)
        if client_ca_file and self.context:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(client_ca_file)
        self.sock = socket.create_server((host, port))
        self.address = self.sock.getsockname()[:2]
        self.accepted: list[str] = []
        """Subject CN of each accepted client (or "-" without a certificate)."""
        self.refused: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    if self.context is None:
                        conn.recv(64)
                        conn.sendall(ANSWER)
                        self.accepted.append("-")
                        continue
                    with self.context.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(64)
                        peer = tls.getpeercert() or {}
                        # ssl's getpeercert(): subject is a tuple of RDNs, each a tuple of (name, value) pairs.
                        subject = cast("tuple[tuple[tuple[str, str], ...], ...]", peer.get("subject", ()))
                        cn = dict(x[0] for x in subject).get("commonName", "-")
                        tls.sendall(ANSWER)
                        self.accepted.append(cn)
                except (ssl.SSLError, OSError) as exc:
                    self.refused.append(getattr(exc, "verify_message", None) or getattr(exc, "reason", None)
                                        or str(exc))

    def close(self) -> None:
        # close() alone leaves a thread blocked in accept() holding the port on Linux; shutdown() wakes it.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(timeout=5)


@dataclasses.dataclass
class Result:
    ok: bool
    detail: str


def connect_plain(host: str, port: int, timeout: float = 5) -> Result:
    """One round trip over plain TCP."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"ping\n")
            answer = sock.recv(64)
    except OSError as exc:
        return Result(False, f"connection failed: {exc}")
    return Result(answer == ANSWER, "plain TCP" if answer == ANSWER else "no answer")


def connect(host: str, port: int, ca_file: str, cert_file: Optional[str] = None, key_file: Optional[str] = None,
            server_name: Optional[str] = None, timeout: float = 5) -> Result:
    """Connects, verifying the server against ca_file and server_name (default: host); one round trip."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(ca_file)
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as exc:  # a missing, truncated or mismatched file: a result, not a crash
        return Result(False, f"cannot load the client's TLS files: {getattr(exc, 'reason', None) or exc}")
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=server_name or host) as tls:
                tls.sendall(b"ping\n")
                answer = tls.recv(64)
                version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        return Result(False, f"server certificate refused: {exc.verify_message}")
    except ssl.SSLError as exc:
        return Result(False, f"TLS failed: {exc.reason or exc}")
    except OSError as exc:
        return Result(False, f"connection failed: {exc}")
    if answer != ANSWER:
        return Result(False, "the server closed the connection after the handshake (client certificate refused?)")
    return Result(True, f"{version}, server certificate verified for {server_name or host}")
