"""A Python grpcio client of the event store, driven by test/e2e/python-client.test.ts.

Usage: python3 client.py HOST:PORT STUBS_DIR

STUBS_DIR holds the modules protoc generated from proto/ (eventstore.v1 and google.rpc
error_details). The script appends, reads back, provokes a conflict and reads the whole log
with a filter, then prints one JSON line with what it sent and what it got; the jest test
asserts on that line. Anything unexpected (an RPC error where none belongs, a conflict that
does not fail) ends the script with a non-zero exit code and the reason on stderr.
"""

import base64
import json
import sys
import uuid

TIMEOUT_SECONDS = 30


def main(target, stubs_dir):
    sys.path.insert(0, stubs_dir)
    import grpc
    from google.protobuf import any_pb2, struct_pb2
    from google.rpc import error_details_pb2
    from eventstore.v1 import eventstore_pb2 as pb
    from eventstore.v1 import eventstore_pb2_grpc as pb_grpc

    def json_value(obj):
        # Struct.update converts Python values; a bare Value needs a holder to do the same.
        holder = struct_pb2.Struct()
        holder.update({"v": obj})
        value = struct_pb2.Value()
        value.CopyFrom(holder.fields["v"])
        return value

    stream = "order-" + uuid.uuid4().hex
    other_stream = "invoice-" + uuid.uuid4().hex
    client_id = str(uuid.uuid4())
    # Odd spacing, key order and an escaped character: re-serialising would change these bytes.
    raw_json = '{ "z": 1,  "a": [1, 2.50],\n "s": "caf\\u00e9 \u00e9" }'.encode("utf-8")
    metadata = struct_pb2.Struct()
    metadata.update({"tenant": "t-1", "attempt": 2})

    proposed = [
        pb.ProposedEvent(type="OrderPlaced", json=json_value({"total": 12.5, "items": ["a", "b"]})),
        pb.ProposedEvent(id=client_id, type="OrderPaid", content_type="application/json", data=raw_json),
        pb.ProposedEvent(type="OrderShipped", json=json_value({"carrier": "dhl"}), metadata=metadata),
    ]

    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT_SECONDS)
        stub = pb_grpc.EventStoreServiceStub(channel)

        appended = stub.Append(
            pb.AppendRequest(stream=stream, events=proposed, expected_state=pb.EXPECTED_STATE_NO_STREAM),
            timeout=TIMEOUT_SECONDS,
        )
        other = stub.Append(
            pb.AppendRequest(
                stream=other_stream,
                events=[
                    pb.ProposedEvent(type="OrderPaid", json=json_value({"other": True})),
                    pb.ProposedEvent(type="InvoiceSent", json=json_value({})),
                ],
            ),
            timeout=TIMEOUT_SECONDS,
        )

        read = [
            event
            for response in stub.ReadStream(
                pb.ReadStreamRequest(stream=stream, direction=pb.DIRECTION_FORWARDS), timeout=TIMEOUT_SECONDS
            )
            for event in response.events
        ]

        conflict = None
        try:
            stub.Append(
                pb.AppendRequest(stream=stream, events=[pb.ProposedEvent(type="Late", json=json_value(1))], expected_revision=0),
                timeout=TIMEOUT_SECONDS,
            )
        except grpc.RpcError as e:
            conflict = describe_error(e, any_pb2, error_details_pb2)
        if conflict is None:
            fail("the append with expected revision 0 to a stream at revision 2 succeeded")

        read_all = [
            event
            for response in stub.ReadAll(
                pb.ReadAllRequest(
                    direction=pb.DIRECTION_FORWARDS,
                    filter=pb.Filter(event_types=["OrderPaid"]),
                    data_encoding=pb.DATA_ENCODING_JSON,
                ),
                timeout=TIMEOUT_SECONDS,
            )
            for event in response.events
        ]

    print(
        json.dumps(
            {
                "stream": stream,
                "other_stream": other_stream,
                "client_id": client_id,
                "sent": [{"type": e.type, "data_b64": b64(e.data) if e.HasField("data") else None} for e in proposed],
                "append": {
                    "revision": str(appended.revision),
                    "positions": [str(p) for p in appended.positions],
                    "event_ids": list(appended.event_ids),
                    "other_positions": [str(p) for p in other.positions],
                    "other_event_ids": list(other.event_ids),
                },
                "read": [recorded(e) for e in read],
                "conflict": conflict,
                "read_all": [recorded(e) for e in read_all],
            },
            sort_keys=True,
        )
    )


def recorded(event):
    payload = event.WhichOneof("payload")
    out = {
        "id": event.id,
        "type": event.type,
        "content_type": event.content_type,
        "stream": event.stream,
        # uint64: strings, so that JSON.parse on the other side keeps every digit.
        "revision": str(event.revision),
        "position": str(event.position),
        "stored_at_seconds": event.stored_at.seconds,
        "metadata": json.loads(_message_to_json(event.metadata)) if event.HasField("metadata") else None,
        "payload": payload,
    }
    if payload == "data":
        out["data_b64"] = b64(event.data)
    elif payload == "json":
        out["json"] = json.loads(_message_to_json(event.json))
    return out


def describe_error(error, any_pb2, error_details_pb2):
    """The status code and the ErrorInfo carried in the grpc-status-details-bin trailer."""
    trailers = dict(error.trailing_metadata() or ())
    details_bin = trailers.get("grpc-status-details-bin")
    out = {"code": error.code().name, "message": error.details(), "has_details_trailer": details_bin is not None}
    if details_bin is None:
        return out
    status = decode_status(details_bin)
    out["status_code"] = status["code"]
    out["status_message"] = status["message"]
    out["detail_type_urls"] = []
    for raw in status["details"]:
        detail = any_pb2.Any.FromString(raw)
        out["detail_type_urls"].append(detail.type_url)
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            out["error_info"] = {"reason": info.reason, "domain": info.domain, "metadata": dict(info.metadata)}
    return out


def decode_status(data):
    """Decodes a google.rpc.Status from the wire format by hand: Debian ships no status_pb2.

    message Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }
    """
    status = {"code": 0, "message": "", "details": []}
    i = 0
    while i < len(data):
        key, i = read_varint(data, i)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, i = read_varint(data, i)
            if field == 1:
                status["code"] = value
        elif wire_type == 2:
            length, i = read_varint(data, i)
            chunk, i = data[i : i + length], i + length
            if field == 2:
                status["message"] = chunk.decode("utf-8")
            elif field == 3:
                status["details"].append(chunk)
        elif wire_type == 1:
            i += 8
        elif wire_type == 5:
            i += 4
        else:
            raise ValueError("unsupported wire type %d in google.rpc.Status" % wire_type)
    return status


def read_varint(data, i):
    result, shift = 0, 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7


def b64(data):
    return base64.b64encode(data).decode("ascii")


def _message_to_json(message):
    from google.protobuf import json_format

    return json_format.MessageToJson(message, indent=None)


def fail(message):
    sys.stderr.write("client.py: " + message + "\n")
    sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        fail("usage: client.py HOST:PORT STUBS_DIR")
    main(sys.argv[1], sys.argv[2])
