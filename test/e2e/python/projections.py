"""A Python grpcio client of the projection records, driven by test/e2e/python-projections.test.ts.

Usage: python3 projections.py HOST:PORT STUBS_DIR contract
       python3 projections.py HOST:PORT STUBS_DIR stop NAME

STUBS_DIR holds the modules protoc generated from proto/ (eventstore.v1 projections and
google.rpc error_details).

contract: walks one record of its own through create, get, persist (and a stale persist),
lease (and a lease held by another), status (and a wrong expected status), reset, list and
delete, and prints one JSON line with every answer and error.

stop: asks the projection NAME, run by another process, to stop (STOPPING over RUNNING), then
watches its record until the runner has obeyed (a status other than STOPPING, and no lease),
and prints one JSON line with the record as
requested and as settled.

Anything unexpected (an RPC error where none belongs, a guarded write that succeeds) ends the
script with a non-zero exit code and the reason on stderr.
"""

import base64
import json
import os
import sys
import time
import uuid

TIMEOUT_SECONDS = 30
LEASE_TTL_MS = 5000


def main(target, stubs_dir, mode, args):
    sys.path.insert(0, stubs_dir)
    import grpc
    from eventstore.v1 import projections_pb2 as pb
    from eventstore.v1 import projections_pb2_grpc as pb_grpc

    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT_SECONDS)
        stub = pb_grpc.ProjectionServiceStub(channel)
        if mode == "contract" and not args:
            report = contract(grpc, pb, stub)
        elif mode == "stop" and len(args) == 1:
            report = stop(pb, stub, args[0])
        else:
            fail(USAGE)
    print(json.dumps(report, sort_keys=True))


def contract(grpc, pb, stub):
    from google.protobuf import any_pb2
    from google.rpc import error_details_pb2

    # client.py already decodes grpc-status-details-bin by hand (Debian ships no status_pb2).
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from client import describe_error

    def failure(call, what):
        try:
            call()
        except grpc.RpcError as e:
            return describe_error(e, any_pb2, error_details_pb2)
        fail(what + " succeeded")

    def call(method, request):
        return getattr(stub, method)(request, timeout=TIMEOUT_SECONDS)

    prefix = "py-" + uuid.uuid4().hex + "-"
    name = prefix + "orders"
    decoy = "decoy-" + uuid.uuid4().hex
    initial_state = b'{"count": 0, "note": "caf\\u00e9"}'

    created = call("CreateProjection", pb.CreateProjectionRequest(name=name, initial_state=initial_state)).projection
    call("CreateProjection", pb.CreateProjectionRequest(name=decoy, initial_state=b"null"))
    got = call("GetProjection", pb.GetProjectionRequest(name=name)).projection

    persisted = call(
        "PersistProjection",
        pb.PersistProjectionRequest(
            name=name,
            expected_version=1,
            state=b'{"count": 3}',
            position=42,
            stream_revisions={"order-1": 2, "order-2": 0},
            lease_holder="py-runner",
        ),
    ).projection
    stale_persist = failure(
        lambda: call("PersistProjection", pb.PersistProjectionRequest(name=name, expected_version=1, state=b'{"count": 1}', position=7)),
        "a persist with expected version 1 over version 2",
    )

    lease_asked_at_ms = int(time.time() * 1000)
    leased = call("AcquireProjectionLease", pb.AcquireProjectionLeaseRequest(name=name, holder="py-runner", ttl_ms=LEASE_TTL_MS)).projection
    lease_held = failure(
        lambda: call("AcquireProjectionLease", pb.AcquireProjectionLeaseRequest(name=name, holder="other", ttl_ms=LEASE_TTL_MS)),
        "acquiring a lease py-runner holds",
    )
    # The version is right, the lease is not: the lease alone refuses it.
    persist_by_other = failure(
        lambda: call(
            "PersistProjection",
            pb.PersistProjectionRequest(name=name, expected_version=2, state=b'{"count": 9}', position=99, lease_holder="other"),
        ),
        "a persist by a runner that does not hold the live lease",
    )

    wrong_status = failure(
        lambda: call(
            "UpdateProjectionStatus",
            pb.UpdateProjectionStatusRequest(
                name=name, status=pb.PROJECTION_STATUS_STOPPING, expected_status=pb.PROJECTION_STATUS_RUNNING
            ),
        ),
        "a status update expecting RUNNING on an IDLE record",
    )
    stopping = call("UpdateProjectionStatus", pb.UpdateProjectionStatusRequest(name=name, status=pb.PROJECTION_STATUS_STOPPING)).projection

    released = call("ReleaseProjectionLease", pb.ReleaseProjectionLeaseRequest(name=name, holder="py-runner"))
    after_release = call("GetProjection", pb.GetProjectionRequest(name=name)).projection

    reset = call("ResetProjection", pb.ResetProjectionRequest(name=name)).projection
    listed = call("ListProjections", pb.ListProjectionsRequest(prefix=prefix))
    call("DeleteProjection", pb.DeleteProjectionRequest(name=name))
    gone = failure(lambda: call("GetProjection", pb.GetProjectionRequest(name=name)), "getting a deleted projection")

    return {
        "name": name,
        "initial_state_b64": b64(initial_state),
        "created": record(pb, created),
        "got": record(pb, got),
        "persisted": record(pb, persisted),
        "stale_persist": stale_persist,
        "lease_asked_at_ms": lease_asked_at_ms,
        "leased": record(pb, leased),
        "lease_held": lease_held,
        "persist_by_other": persist_by_other,
        "wrong_status": wrong_status,
        "stopping": record(pb, stopping),
        "released": released.ByteSize() == 0,
        "after_release": record(pb, after_release),
        "reset": record(pb, reset),
        "listed": [p.name for p in listed.projections],
        "listed_next_page_token": listed.next_page_token,
        "gone": gone,
    }


def stop(pb, stub, name):
    requested = stub.UpdateProjectionStatus(
        pb.UpdateProjectionStatusRequest(name=name, status=pb.PROJECTION_STATUS_STOPPING, expected_status=pb.PROJECTION_STATUS_RUNNING),
        timeout=TIMEOUT_SECONDS,
    ).projection
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        settled = stub.GetProjection(pb.GetProjectionRequest(name=name), timeout=TIMEOUT_SECONDS).projection
        # Obeyed: the status moved on and the runner let its lease go.
        if settled.status != pb.PROJECTION_STATUS_STOPPING and not settled.HasField("lease"):
            break
        if time.monotonic() > deadline:
            fail("projection %s not settled after %d s: %s" % (name, TIMEOUT_SECONDS, record(pb, settled)))
        time.sleep(0.05)
    return {"requested": record(pb, requested), "settled": record(pb, settled)}


def record(pb, projection):
    return {
        "name": projection.name,
        "status": pb.ProjectionStatus.Name(projection.status),
        "state_b64": b64(projection.state),
        "state_content_type": projection.state_content_type,
        "initial_state_b64": b64(projection.initial_state),
        # uint64: strings, so that JSON.parse on the other side keeps every digit.
        "position": str(projection.position),
        "stream_revisions": {stream: str(revision) for stream, revision in projection.stream_revisions.items()},
        "version": str(projection.version),
        "lease": (
            {"holder": projection.lease.holder, "expires_at_ms": projection.lease.expires_at.ToMilliseconds()}
            if projection.HasField("lease")
            else None
        ),
        "created_at_ms": projection.created_at.ToMilliseconds(),
        "updated_at_ms": projection.updated_at.ToMilliseconds(),
    }


def b64(data):
    return base64.b64encode(data).decode("ascii")


def fail(message):
    sys.stderr.write("projections.py: " + message + "\n")
    sys.exit(1)


USAGE = "usage: projections.py HOST:PORT STUBS_DIR contract | projections.py HOST:PORT STUBS_DIR stop NAME"

if __name__ == "__main__":
    if len(sys.argv) < 4:
        fail(USAGE)
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
