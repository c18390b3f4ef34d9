#!/usr/bin/env python3
"""Orders a license over gRPC, waits until it is ACTIVE and reads its events from the
change feed.

    LICENSE_FACADE_TOKEN=... python3 example.py --target 127.0.0.1:50051

The token is a client's API token: its SHA-256 is in the service's clients file
(`serve --sandbox` without one accepts `sandbox-token`). Exits 0 when the license is
ACTIVE and its events were read, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

import grpc

import licensefacade
from licensefacade.v1 import license_service_pb2 as pb

State = pb.License.State
Kind = pb.LicenseEvent.Kind

# States a license does not leave by itself: waiting longer changes nothing.
SETTLED = {State.ACTIVE, State.FAILED, State.NEEDS_ATTENTION, State.CANCELLED}


def main() -> int:
    args = arguments()
    token = os.environ.get("LICENSE_FACADE_TOKEN")
    if not token:
        print("set LICENSE_FACADE_TOKEN to a client token of the service", file=sys.stderr)
        return 2
    with licensefacade.connect(args.target, token) as channel:
        stub = licensefacade.stub(channel)
        try:
            license = order(stub, args)
            license = wait_until_settled(stub, license.id, args.timeout)
            if license.state != State.ACTIVE:
                print(f"license {license.id} ended {State.Name(license.state)}: "
                      f"{license.last_error.code} {license.last_error.message}")
                return 1
            read_events(stub, license.id, args.timeout)
        except grpc.RpcError as error:
            print(f"{error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    return 0


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="gRPC address, host:port")
    parser.add_argument("--server-id", default="example-python-1")
    parser.add_argument("--ip", default="203.0.113.202")
    parser.add_argument("--panel", default="ISPmanager 6 Lite")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for each wait")
    return parser.parse_args()


def order(stub, args) -> pb.License:
    """Orders the license and waits (within the call's deadline, at most 60 s on the
    service) for it to become ACTIVE. The request id makes a retry of this very call
    safe: the service answers the first result instead of buying twice."""
    request = pb.OrderLicenseRequest(
        server=pb.Server(id=args.server_id, ip=args.ip),
        panel=args.panel,
        period_months=1,
        wait_for_active=True,
        request_id=f"example-{uuid.uuid4()}",
    )
    answer = stub.OrderLicense(request, timeout=args.timeout)
    license = answer.license
    what = "ordered" if answer.created else "already there"
    print(f"license {license.id} for {license.server_id} ({license.panel}): {what}, "
          f"{State.Name(license.state)}")
    return license


def wait_until_settled(stub, license_id: str, timeout: float) -> pb.License:
    """Polls GetLicense until the license is in a settled state (the order call may
    have returned before, e.g. when its own deadline was shorter)."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        license = stub.GetLicense(pb.GetLicenseRequest(id=license_id), timeout=10).license
        if license.state in SETTLED:
            key = "with a key" if license.license_key else "without a key"
            expiry = license.expire_time.ToJsonString() if license.HasField("expire_time") else "-"
            print(f"license {license.id}: {State.Name(license.state)} {key}, expires {expiry}")
            return license
        if time.monotonic() > deadline:
            raise TimeoutError(f"license {license_id} still {State.Name(license.state)}")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def read_events(stub, license_id: str, timeout: float) -> None:
    """Reads the change feed from its start until this license's event that made it
    ACTIVE. A reader that remembers the last `event.id` and passes it as
    `after_event_id` when it reconnects misses nothing and sees nothing twice."""
    stream = stub.WatchLicenses(pb.WatchLicensesRequest(after_event_id=0), timeout=timeout)
    try:
        for answer in stream:
            event = answer.event
            if event.license.id != license_id:
                continue
            print(f"event {event.id}: {Kind.Name(event.kind)} "
                  f"{State.Name(event.license.state)} at {event.time.ToJsonString()}")
            if event.license.state == State.ACTIVE:
                return
    finally:
        stream.cancel()
    raise RuntimeError("the change feed ended before the license's ACTIVE event")


if __name__ == "__main__":
    sys.exit(main())
