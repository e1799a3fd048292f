"""A minimal Axon Server gRPC client for docker/smoke.sh: appends an aggregate's events through one
node and reads them back through others, over the published loopback ports only.

Generates the Python stubs from the repository's proto/ with grpcio-tools at start (nothing is
checked in). Every call has a deadline; `read` retries until its own deadline, as a follower may
apply a committed entry a moment after the leader answered.

usage:
  smoke_client.py --proto DIR            health  --http HOST:PORT --voters N   (UP, N voters, a leader)
  smoke_client.py --proto DIR --token T  members --http HOST:PORT --voters N   (GET /v1/cluster)
  smoke_client.py --proto DIR [--token T] append  --endpoint HOST:PORT --aggregate ID --count N
  smoke_client.py --proto DIR [--token T] read    --endpoint HOST:PORT --aggregate ID --count N
  smoke_client.py --proto DIR            denied  --endpoint HOST:PORT   (no token: expect AXONIQ-1000)
  smoke_client.py --proto DIR [--token T] conflict --endpoint HOST:PORT --aggregate ID
"""

import argparse
import importlib.resources
import json
import sys
import tempfile
import time
import urllib.request

import grpc
from grpc_tools import protoc

CALL_TIMEOUT_S = 10


def load_stubs(proto_dir):
    out = tempfile.mkdtemp(prefix="myelin-smoke-stubs-")
    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    for name in ("common.proto", "event.proto"):
        rc = protoc.main(
            [
                "protoc",
                f"-I{proto_dir}",
                f"-I{well_known}",
                f"--python_out={out}",
                f"--grpc_python_out={out}",
                name,
            ]
        )
        if rc != 0:
            sys.exit(f"protoc failed on {name} (rc {rc})")
    sys.path.insert(0, out)
    import common_pb2
    import event_pb2
    import event_pb2_grpc

    return common_pb2, event_pb2, event_pb2_grpc


def metadata(token):
    md = [("axoniq-context", "default")]
    if token:
        md.append(("axoniq-access-token", token))
    return md


def error_code(err):
    for key, value in err.trailing_metadata() or ():
        if key == "axoniq-errorcode":
            return value
    return None


def make_event(common, pb, aggregate, seq):
    return pb.Event(
        message_identifier=f"{aggregate}-{seq}",
        aggregate_identifier=aggregate,
        aggregate_sequence_number=seq,
        aggregate_type="SmokeAggregate",
        timestamp=int(time.time() * 1000),
        payload=common.SerializedObject(
            type="io.myelin.smoke.SmokeEvent", revision="1", data=f"event {seq}".encode()
        ),
    )


def get_json(url, token=""):
    request = urllib.request.Request(url)
    if token:
        request.add_header("AxonIQ-Access-Token", token)
    with urllib.request.urlopen(request, timeout=CALL_TIMEOUT_S) as response:
        return json.load(response)


def check_http(args):
    """health: UP with the expected voters and a leader; members: GET /v1/cluster lists them."""
    deadline = time.monotonic() + args.deadline
    while True:
        try:
            if args.action == "health":
                health = get_json(f"http://{args.http}/actuator/health")
                raft = health["components"]["raft"]["details"]
                state = (health["status"], len(raft["voters"]), raft["leader"] is not None)
                if state == ("UP", args.voters, True):
                    print(f"{args.http}: UP, {raft['role'].lower()}, leader {raft['leader']}, voters {sorted(raft['voters'])}")
                    return
            else:
                nodes = get_json(f"http://{args.http}/v1/cluster", args.token)
                leaders = [n["name"] for n in nodes if n["leader"]]
                state = (len(nodes), leaders)
                if len(nodes) == args.voters and len(leaders) == 1:
                    print(f"{args.http}: /v1/cluster lists {sorted(n['name'] for n in nodes)}, leader {leaders[0]}")
                    return
        except (OSError, ValueError, KeyError) as err:
            state = repr(err)
        if time.monotonic() > deadline:
            sys.exit(f"{args.action} {args.http}: not as expected within {args.deadline} s: {state}")
        time.sleep(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--proto", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("action", choices=["health", "members", "append", "read", "denied", "conflict"])
    parser.add_argument("--endpoint", default="", help="gRPC 127.0.0.1:PORT")
    parser.add_argument("--http", default="", help="HTTP 127.0.0.1:PORT")
    parser.add_argument("--voters", type=int, default=3)
    parser.add_argument("--aggregate", default="")
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--deadline", type=float, default=30.0)
    args = parser.parse_args()
    target = args.http if args.action in ("health", "members") else args.endpoint
    if not target.startswith("127.0.0.1:"):
        sys.exit("smoke_client.py talks to loopback endpoints only (127.0.0.1:PORT)")
    if args.action in ("health", "members"):
        check_http(args)
        return

    common, pb, pb_grpc = load_stubs(args.proto)
    with grpc.insecure_channel(args.endpoint) as channel:
        grpc.channel_ready_future(channel).result(timeout=CALL_TIMEOUT_S)
        stub = pb_grpc.EventStoreStub(channel)

        if args.action == "append":
            events = [make_event(common, pb, args.aggregate, seq) for seq in range(args.count)]
            reply = stub.AppendEvent(
                iter(events), timeout=CALL_TIMEOUT_S, metadata=metadata(args.token)
            )
            if not reply.success:
                sys.exit(f"append through {args.endpoint}: not confirmed: {reply}")
            print(f"appended {len(events)} events of {args.aggregate} through {args.endpoint}")

        elif args.action == "read":
            deadline = time.monotonic() + args.deadline
            while True:
                request = pb.GetAggregateEventsRequest(aggregate_id=args.aggregate)
                events = list(
                    stub.ListAggregateEvents(
                        request, timeout=CALL_TIMEOUT_S, metadata=metadata(args.token)
                    )
                )
                got = [(e.aggregate_sequence_number, e.message_identifier, e.payload.data) for e in events]
                want = [
                    (seq, f"{args.aggregate}-{seq}", f"event {seq}".encode())
                    for seq in range(args.count)
                ]
                if got == want:
                    print(f"read {len(events)} events of {args.aggregate} through {args.endpoint}: all match")
                    break
                if time.monotonic() > deadline:
                    sys.exit(f"read through {args.endpoint}: expected {want}, got {got}")
                time.sleep(0.5)

        elif args.action == "denied":
            try:
                stub.GetLastToken(pb.GetLastTokenRequest(), timeout=CALL_TIMEOUT_S, metadata=metadata(""))
            except grpc.RpcError as err:
                code = error_code(err)
                if code == "AXONIQ-1000":
                    print(f"a call without a token through {args.endpoint} is refused: {err.code().name} {code}")
                    return
                sys.exit(f"a call without a token: expected AXONIQ-1000, got {err.code().name} {code}")
            sys.exit("a call without a token was answered: access control is off")

        elif args.action == "conflict":
            try:
                stub.AppendEvent(
                    iter([make_event(common, pb, args.aggregate, 0)]),
                    timeout=CALL_TIMEOUT_S,
                    metadata=metadata(args.token),
                )
            except grpc.RpcError as err:
                code = error_code(err)
                if err.code() == grpc.StatusCode.OUT_OF_RANGE and code == "AXONIQ-2000":
                    print(f"appending sequence 0 again through {args.endpoint} is refused: OUT_OF_RANGE {code}")
                    return
                sys.exit(f"duplicate sequence: expected OUT_OF_RANGE AXONIQ-2000, got {err.code().name} {code}")
            sys.exit("appending sequence 0 twice was accepted")


if __name__ == "__main__":
    main()
