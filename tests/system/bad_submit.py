"""Sends malformed and oversized SubmitGroups to a learner as an ordinary client would.

Usage: bad_submit.py LEARNER_ADDRESS
Messages are hand-built protobuf bytes (no generated code), sent on the raw method
'/sfpo.v1.Learner/SubmitGroups'. Prints one JSON object: for each probe, the gRPC status code
name, and for accepted calls the per-group results.
"""
import json
import struct
import sys
import time

import grpc


def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(number, value):
    return varint(number << 3 | 0) + varint(value)


def field_bytes(number, data):
    return varint(number << 3 | 2) + varint(len(data)) + data


def field_float(number, value):
    return varint(number << 3 | 5) + struct.pack("<f", value)


def completion(tokens, logprobs, reward=0.0):
    # Completion{tokens=1 packed int32, logprobs=2 packed float, reward=3}
    packed_tokens = b"".join(varint(t) for t in tokens)
    packed_logprobs = b"".join(struct.pack("<f", x) for x in logprobs)
    return (field_bytes(1, packed_tokens) + field_bytes(2, packed_logprobs) +
            field_float(3, reward))


def group(lease_id, version, completions):
    # ScoredGroup{lease_id=1, policy_version=2, completions=3}
    body = field_varint(1, lease_id) + field_varint(2, version)
    for c in completions:
        body += field_bytes(3, c)
    return body


def submit_request(worker_id, groups):
    # SubmitGroupsRequest{worker_id=1, groups=2}
    body = field_bytes(1, worker_id.encode())
    for g in groups:
        body += field_bytes(2, g)
    return body


def read_varint(data, pos):
    shift = result = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, pos


def fields(data):
    """Yields (number, wire_type, value) of a message's top-level fields."""
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(data, pos)
        elif wire == 2:
            n, pos = read_varint(data, pos)
            value, pos = data[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        else:
            raise ValueError("wire type %d" % wire)
        yield number, wire, value


def parse_results(data):
    """SubmitGroupsResponse{results=1: GroupResult{lease_id=1, accepted=2, reason=3}}."""
    results = []
    for number, _, value in fields(data):
        if number != 1:
            continue
        r = {"lease_id": 0, "accepted": False, "reason": ""}
        for n, _, v in fields(value):
            if n == 1:
                r["lease_id"] = v
            elif n == 2:
                r["accepted"] = bool(v)
            elif n == 3:
                r["reason"] = v.decode()
        results.append(r)
    return results


def parse_lease(data):
    """LeaseWorkResponse{leases=1: Lease{lease_id=1, group_size=7, policy_version=8}}."""
    for number, _, value in fields(data):
        if number == 1:
            lease = {"lease_id": 0, "group_size": 0, "policy_version": 0}
            for n, _, v in fields(value):
                if n == 1:
                    lease["lease_id"] = v
                elif n == 7:
                    lease["group_size"] = v
                elif n == 8:
                    lease["policy_version"] = v
            return lease
    return None


def main():
    target = sys.argv[1]
    channel = grpc.insecure_channel(target, options=[
        ("grpc.max_send_message_length", 64 << 20),
        ("grpc.max_receive_message_length", 64 << 20)])
    grpc.channel_ready_future(channel).result(timeout=30)
    submit = channel.unary_unary("/sfpo.v1.Learner/SubmitGroups")
    lease_work = channel.unary_unary("/sfpo.v1.Learner/LeaseWork")
    out = {}

    def probe(name, payload):
        try:
            reply = submit(payload, timeout=30)
            out[name] = {"code": "OK", "results": parse_results(reply)}
        except grpc.RpcError as e:
            out[name] = {"code": e.code().name, "details": e.details() or ""}

    ok_completion = completion([5, 6], [-0.5, -0.25])
    # Requests refused as a whole, before any lease is looked up: the lease and its group size
    # do not matter to them.
    g, lid, version = 4, 1, 0

    # Bytes that are not a SubmitGroupsRequest: a field key whose varint never ends.
    probe("garbage", b"\xff" * 11)
    # Well-formed, but over the learner's 16 MiB receive limit.
    probe("oversized", submit_request("intruder", [
        group(lid, version, [field_bytes(1, b"\x05" * (17 << 20))])]))
    # Well-formed, no worker id.
    probe("no_worker_id", submit_request("", [group(lid, version, [ok_completion] * g)]))
    # More groups than one request may carry.
    probe("too_many_groups", submit_request("intruder", [group(lid, version, [ok_completion])] * 1025))
    # A lease held by this client, taken just before it is needed (it expires), so that
    # per-group validation (not just the lease lookup) is reached.
    # LeaseWorkRequest{worker_id=1, max_leases=2, worker_version=3}.
    lease = None
    for _ in range(600):
        reply = lease_work(field_bytes(1, b"intruder") + field_varint(2, 1) +
                           field_varint(3, 0), timeout=30)
        lease = parse_lease(reply)
        if lease:
            break
        time.sleep(0.05)
    out["lease"] = lease
    g = lease["group_size"] if lease else 4
    lid = lease["lease_id"] if lease else 1
    version = lease["policy_version"] if lease else 0
    # Per-group rejections, in one call: an unknown lease, the wrong number of completions, a
    # token id beyond the vocabulary, a log-probability above 0.
    probe("bad_groups", submit_request("intruder", [
        group(987654321, version, [ok_completion] * g),
        group(lid, version, [ok_completion] * (g + 1)),
        group(lid, version, [completion([5, 1 << 20], [-0.5, -0.25])] * g),
        group(lid, version, [completion([5, 6], [-0.5, 0.25])] * g),
    ]))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
