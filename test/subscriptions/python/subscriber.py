"""A Python grpcio subscriber of the event store, driven by ../python-subscribe.test.ts.

Usage: python3 subscriber.py HOST:PORT STUBS_DIR STREAM LIVE_EVENTS

STUBS_DIR holds the modules protoc generated from proto/eventstore/v1. The script subscribes
to STREAM from the start with JSON data encoding and prints one JSON line per step: {"caught_up":
POSITION} when the history is delivered (the jest test then appends), and at the end a report of
every message received, once LIVE_EVENTS events arrived after caught-up. It then cancels the
call. An RPC error, a stream that ends, or no live events within the deadline ends the script
with a non-zero exit code and the reason on stderr.
"""

import json
import sys

TIMEOUT_SECONDS = 30


def main(target, stubs_dir, stream, live_events):
    sys.path.insert(0, stubs_dir)
    import grpc
    from google.protobuf import json_format
    from eventstore.v1 import eventstore_pb2 as pb
    from eventstore.v1 import eventstore_pb2_grpc as pb_grpc

    messages = []
    live = 0
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.EventStoreServiceStub(channel)
        call = stub.Subscribe(
            pb.SubscribeRequest(
                stream=stream,
                start_point=pb.START_POINT_START,
                data_encoding=pb.DATA_ENCODING_JSON,
                heartbeat_interval_ms=1000,
            ),
            timeout=TIMEOUT_SECONDS,
        )
        caught_up = False
        try:
            for response in call:
                kind = response.WhichOneof("message")
                if kind == "confirmation":
                    messages.append(
                        {
                            "kind": kind,
                            "subscription_id": response.confirmation.subscription_id,
                            # uint64: strings, so that JSON.parse on the other side keeps every digit.
                            "after_position": str(response.confirmation.after_position),
                        }
                    )
                elif kind == "events":
                    # A batch: one entry per event, so the other side sees the events in order.
                    for event in response.events.events:
                        messages.append({"kind": "event", "live": caught_up, **recorded(event, json_format)})
                        if caught_up:
                            live += 1
                elif kind == "caught_up":
                    messages.append({"kind": kind, "position": str(response.caught_up.position)})
                    caught_up = True
                    print(json.dumps({"caught_up": str(response.caught_up.position)}), flush=True)
                elif kind == "checkpoint":
                    messages.append({"kind": kind, "position": str(response.checkpoint.position)})
                elif kind == "fell_behind":
                    messages.append({"kind": kind, "position": str(response.fell_behind.position)})
                elif kind == "heartbeat":
                    messages.append({"kind": kind, "seconds": response.heartbeat.time.seconds})
                else:
                    fail("a message with no known field set: %r" % response)
                if live == live_events:
                    call.cancel()
                    break
        except grpc.RpcError as e:
            fail("the subscription failed with %s: %s (after %d messages)" % (e.code().name, e.details(), len(messages)))
        if live < live_events:
            fail("the subscription ended after %d messages, %d of %d live events" % (len(messages), live, live_events))

    print(json.dumps({"messages": messages}, sort_keys=True), flush=True)


def recorded(event, json_format):
    payload = event.WhichOneof("payload")
    out = {
        "id": event.id,
        "type": event.type,
        "stream": event.stream,
        "revision": str(event.revision),
        "position": str(event.position),
        "payload": payload,
    }
    if payload == "json":
        out["json"] = json.loads(json_format.MessageToJson(event.json))
    return out


def fail(reason):
    sys.stderr.write(reason + "\n")
    sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) != 5:
        fail("usage: subscriber.py HOST:PORT STUBS_DIR STREAM LIVE_EVENTS")
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
