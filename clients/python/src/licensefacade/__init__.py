"""Client of license-facade's gRPC API (package ``licensefacade.v1``).

The messages and the stub are generated (``licensefacade.v1``); this module adds what
every caller needs besides: a channel whose calls carry the client's bearer token.
"""

from __future__ import annotations

from typing import Optional

import grpc

from licensefacade.v1 import license_service_pb2_grpc

__all__ = ["connect", "stub"]


class _Bearer(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
):
    """Adds ``authorization: Bearer <token>`` to the metadata of every call.

    An interceptor rather than call credentials: gRPC sends call credentials only over
    TLS, and the service is often reached in plaintext inside a private network or
    through a sidecar that terminates TLS.
    """

    def __init__(self, token: str) -> None:
        self._metadata = ("authorization", f"Bearer {token}")

    def _with_token(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = list(details.metadata or [])
        metadata.append(self._metadata)
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


def connect(
    target: str,
    token: str,
    credentials: Optional[grpc.ChannelCredentials] = None,
) -> grpc.Channel:
    """A channel to ``target`` (``host:port``) whose every call carries ``token``.

    Plaintext unless ``credentials`` are given (e.g. ``grpc.ssl_channel_credentials()``).
    The token is the client's API token from the service's clients file; it is sent, never
    logged here.
    """
    if credentials is None:
        channel = grpc.insecure_channel(target)
    else:
        channel = grpc.secure_channel(target, credentials)
    return grpc.intercept_channel(channel, _Bearer(token))


def stub(channel: grpc.Channel) -> license_service_pb2_grpc.LicenseServiceStub:
    """The ``licensefacade.v1.LicenseService`` stub on ``channel``."""
    return license_service_pb2_grpc.LicenseServiceStub(channel)
