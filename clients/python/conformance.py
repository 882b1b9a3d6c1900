#!/usr/bin/python3
"""Conformance checks of a Spool broker against docs/protocol.md, with the Python client.

    /usr/bin/python3 conformance.py --broker tcp://127.0.0.1:PORT --spool /path/to/spool

Prints `ok NAME` or `FAIL NAME: why` per check and `conformance: N checks, M failed`; exits 0
only if every check passed. Every check works on its own freshly named topics and groups.
"""

import argparse
import base64
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True  # leave no __pycache__ next to the sources
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spool_client import (  # noqa: E402
    EARLIEST, LATEST, OP_CREATE_TOPIC, OP_FETCH, OP_LIST_OFFSETS, OP_METADATA, OP_PRODUCE,
    CommittedOffset, FrameHeader, Record,
    SpoolClient, SpoolError, Timeout, build_batch, crc32c, create_topic_body,
    decode_error_body, decode_varint, decode_zigzag, encode_record, encode_varint, encode_zigzag,
    error_name, fetch_body, list_offsets_body, metadata_body, parse_batch, produce_body,
    set_batch_sequence,
)

CHECKS = []


def check(name):
    def register(fn):
        CHECKS.append((name, fn))
        return fn
    return register


class CheckFailed(Exception):
    pass


def expect(condition, why):
    if not condition:
        raise CheckFailed(why)


def expect_equal(actual, wanted, what):
    if actual != wanted:
        raise CheckFailed("%s: got %r, expected %r" % (what, actual, wanted))


def expect_error(name, fn, *args, **kwargs):
    """Runs fn, which must fail with the error `name`; returns the SpoolError."""
    try:
        result = fn(*args, **kwargs)
    except SpoolError as e:
        if e.name != name:
            raise CheckFailed("expected %s, got %s" % (name, e))
        expect(e.message, "error reply with an empty message")
        return e
    except Timeout:
        raise CheckFailed("expected %s, got no reply" % name)
    raise CheckFailed("expected %s, got success %r" % (name, result))


class Context:
    def __init__(self, broker, spool):
        self.broker = broker
        self.spool = spool
        self.run = "cf%x" % (int(time.time() * 1000) % 0xFFFFFFFF)
        self.counter = 0
        self.check_name = ""
        self.clients = []

    def name(self, label=""):
        """A fresh topic or group name, unique to this run and check."""
        self.counter += 1
        return "%s-%s%s-%d" % (self.run, self.check_name, "-" + label if label else "",
                               self.counter)

    def client(self, timeout=10.0):
        c = SpoolClient(self.broker, timeout=timeout)
        self.clients.append(c)
        return c

    def close_clients(self):
        for c in self.clients:
            c.close()
        self.clients = []

    def cli(self, *args, stdin=None, timeout=60):
        cmd = [self.spool, *args, "--broker", self.broker]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
        if proc.returncode != 0:
            raise CheckFailed("%s exited %d: %s" % (" ".join(cmd[:3]), proc.returncode,
                                                     proc.stderr.decode(errors="replace").strip()))
        return proc.stdout


# Helpers -------------------------------------------------------------------------------------

BASE_TS = 1_700_000_000_000


def rec(value, key=None, headers=(), ts=None):
    return Record(value, key, list(headers), ts)


def same_records(got, wanted, what="records"):
    """Compares key, value, headers and timestamp (and offset when wanted has one)."""
    expect_equal(len(got), len(wanted), "%s: count" % what)
    for i, (g, w) in enumerate(zip(got, wanted)):
        for attr in ("key", "value", "headers", "timestamp", "offset"):
            wv = getattr(w, attr)
            if wv is None and attr in ("timestamp", "offset"):
                continue
            expect_equal(getattr(g, attr), wv, "%s[%d].%s" % (what, i, attr))


def all_records(client, topic, partition=0, start=0):
    """Every visible record of a partition from `start`, fetching until the end."""
    out = []
    offset = start
    while True:
        f = client.fetch(topic, partition, offset)
        got = f.records(offset)
        out += got
        if not got or f.log_end_offset <= got[-1].offset + 1:
            return out
        offset = got[-1].offset + 1


def raw_request(client, header, frames, timeout=5.0):
    """Sends a hand-made header (a FrameHeader) and frames; returns the raw reply."""
    corr = client.send_frames([header.encode(), *frames], header.correlation_id, header.op_code)
    return client.receive_raw(corr, timeout)


def expect_error_reply(reply, name, corr, op):
    expect_equal(reply.header.correlation_id, corr, "reply correlation id")
    expect_equal(reply.header.op_code, op, "reply op code")
    expect(reply.header.is_reply, "reply flag not set")
    expect_equal(reply.header.version, 1, "reply version")
    got = error_name(reply.header.error_code)
    if got != name:
        detail = ""
        if reply.header.error_code == 0:
            detail = " (success, %d frames)" % len(reply.frames)
        else:
            detail = ": %s" % decode_error_body(reply.frames[0])[0]
        raise CheckFailed("expected %s, got %s%s" % (name, got, detail))
    expect_equal(len(reply.frames), 1, "frames after the header of an error reply")
    return decode_error_body(reply.frames[0])


def topic_exists(client, topic):
    try:
        client.describe_topic(topic)
        return True
    except SpoolError as e:
        if e.name == "unknownTopic":
            return False
        raise


# Offline: the worked examples ------------------------------------------------------------------

def expect_still_waiting(client, corr, seconds, failure):
    """The request `corr` (a long poll) gets no reply within `seconds`."""
    try:
        client.receive(corr, timeout=seconds, give_up=False)
        raise CheckFailed(failure)
    except Timeout:
        pass


@check("spec-worked-examples")
def _(ctx):
    expect_equal(crc32c(b"123456789"), 0xE3069283, "CRC-32C check value")
    for n, enc in [(0, b"\x00"), (-1, b"\x01"), (1, b"\x02"), (-2, b"\x03"), (2, b"\x04"),
                   (63, b"\x7e"), (64, b"\x80\x01")]:
        expect_equal(encode_zigzag(n), enc, "zigzag(%d)" % n)
        expect_equal(decode_zigzag(enc, 0)[0], n, "unzigzag(%d)" % n)
    expect_equal(encode_varint(300), b"\xac\x02", "varint(300)")
    expect_equal(decode_varint(encode_varint(2**64 - 1), 0)[0], 2**64 - 1, "varint 2^64-1")
    hx = bytes.fromhex
    expect_equal(FrameHeader(OP_PRODUCE, 1).encode(),
                 hx("53 01 01 00 00 00 00 00 01 00 00 00 00 00 00 00"), "10.1 produce header")
    expect_equal(produce_body("orders", 0), hx("06 00 6f 72 64 65 72 73 00 00 00 00"),
                 "10.1 produce body")
    batch = build_batch([rec(b"hello", b"k", [("h", b"v")], BASE_TS)])
    wanted = hx("00 00 00 00 00 00 00 00 3e 00 00 00 01 30 10 86 35 00 00 00 00 00 00 00 68 e5"
                "cf 8b 01 00 00 00 68 e5 cf 8b 01 00 00 ff ff ff ff ff ff ff ff ff ff ff ff ff"
                "ff 01 00 00 00 10 00 00 00 02 6b 0a 68 65 6c 6c 6f 01 02 68 02 76")
    expect_equal(batch, wanted, "10.1 produce batch")
    parsed = parse_batch(wanted)
    same_records(parsed.records, [Record(b"hello", b"k", [("h", b"v")], BASE_TS, 0)])
    expect_equal(FrameHeader(OP_FETCH, 2).encode(),
                 hx("53 01 02 00 00 00 00 00 02 00 00 00 00 00 00 00"), "10.2 fetch header")
    expect_equal(fetch_body("orders", 0, 0, 1000, 1, 1 << 20),
                 hx("06 00 6f 72 64 65 72 73 00 00 00 00 00 00 00 00"
                    "00 00 00 00 e8 03 00 00 01 00 00 00 00 00 10 00"), "10.2 fetch body")
    stamped = bytearray(wanted)
    struct.pack_into("<q", stamped, 0, 40)
    expect_equal(parse_batch(bytes(stamped)).records[0].offset, 40, "10.3 batch at offset 40")
    msg, details = decode_error_body(hx(
        "30 00 6f 66 66 73 65 74 20 37 20 69 73 20 6f 75 74 73 69 64 65 20 6f 72 64 65 72 73"
        "2f 30 2c 20 77 68 69 63 68 20 68 6f 6c 64 73 20 30 20 74 6f 20 31 02 00 00 00 08 00"
        "65 61 72 6c 69 65 73 74 00 00 00 00 00 00 00 00 06 00 6c 61 74 65 73 74"
        "01 00 00 00 00 00 00 00"))
    expect_equal(msg, "offset 7 is outside orders/0, which holds 0 to 1", "10.4 message")
    expect_equal(details, {"earliest": 0, "latest": 1}, "10.4 details")


# Produce and fetch ---------------------------------------------------------------------------

@check("produce-keys-headers")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    records = [
        rec(b"v0", b"key-0", [("a", b"1"), ("a", b"2"), ("bin", bytes(range(256)))],
            BASE_TS + 5),
        rec(b"no key", None, [], BASE_TS + 3),          # keyLength -1
        rec(b"", b"", [("empty", b"")], BASE_TS + 9),   # empty key, empty value
    ]
    batch = build_batch(records)
    r = c.produce_batch(topic, 0, batch)
    expect_equal((r.partition, r.base_offset), (0, 0), "produce reply (partition, baseOffset)")
    expect(r.durability in (0, 1, 2), "durability %d is not a known value" % r.durability)
    f = c.fetch(topic, 0, 0)
    expect_equal((f.partition, f.log_start_offset, f.log_end_offset), (0, 0, 3),
                 "fetch reply body")
    same_records(f.records(), [Record(x.value, x.key, x.headers, x.timestamp, i)
                               for i, x in enumerate(records)])
    expect(f.records()[1].key is None and f.records()[2].key == b"",
           "no key and empty key are not told apart")
    expect_equal(f.records_frame, batch, "stored batch bytes (a batch is stored unchanged)")
    # A second batch is appended after the first; its base offset is stamped into bytes 0-7.
    batch2 = build_batch([rec(b"x", ts=BASE_TS + 20)])
    r2 = c.produce_batch(topic, 0, batch2)
    expect_equal(r2.base_offset, 3, "second batch's baseOffset")
    f2 = c.fetch(topic, 0, 3)
    expect_equal(f2.records_frame, struct.pack("<q", 3) + batch2[8:], "second batch as stored")


@check("fetch-starts-inside-batch")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    c.produce(topic, 0, [rec(b"%d" % i, ts=BASE_TS) for i in range(4)])
    f = c.fetch(topic, 0, 2)
    expect_equal(f.batches[0].base_offset, 0, "first batch of a fetch at offset 2")
    expect_equal([r.value for r in f.records(2)], [b"2", b"3"], "records from offset 2")
    f = c.fetch(topic, 0, 4)
    expect_equal(f.records_frame, b"", "records frame at the end of the log")


@check("fetch-max-bytes")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    batches = [build_batch([rec(b"x" * 100, ts=BASE_TS + i)]) for i in range(3)]
    for b in batches:
        c.produce_batch(topic, 0, b)
    f = c.fetch(topic, 0, 0, max_bytes=1)
    expect_equal(len(f.batches), 1, "batches for maxBytes 1 (at least the first, whole)")
    f = c.fetch(topic, 0, 0, max_bytes=0)
    expect_equal(len(f.batches), 1, "batches for maxBytes 0 (counts as 1)")
    f = c.fetch(topic, 0, 0, max_bytes=len(batches[0]) * 2 + 10)
    expect_equal(len(f.batches), 2, "batches for maxBytes of two and a bit batches")
    f = c.fetch(topic, 0, 1, min_bytes=0)
    expect_equal([b.base_offset for b in f.batches], [1, 2], "batches from offset 1")


@check("fetch-long-poll-answered")
def _(ctx):
    reader, writer = ctx.client(), ctx.client()
    topic = ctx.name()
    writer.produce(topic, 0, [rec(b"first")])
    started = time.monotonic()
    corr = reader.send_fetch(topic, 0, 1, max_wait_ms=10_000)
    expect_still_waiting(reader, corr, 0.5, "a fetch at the end was answered before any record arrived")
    writer.produce(topic, 0, [rec(b"second", b"k")])
    f = reader.receive_fetch(corr, timeout=10)
    waited = time.monotonic() - started
    expect(waited < 5, "long poll answered only after %.1f s" % waited)
    expect_equal([(r.offset, r.key, r.value) for r in f.records(1)], [(1, b"k", b"second")],
                 "records delivered to the waiting fetch")
    expect_equal(f.log_end_offset, 2, "logEndOffset")


@check("fetch-long-poll-timeout")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    c.produce(topic, 0, [rec(b"only")])
    started = time.monotonic()
    f = c.fetch(topic, 0, 1, max_wait_ms=600)
    waited = time.monotonic() - started
    expect(waited >= 0.55, "answered after %.2f s, before the 600 ms wait ran out" % waited)
    expect(waited < 5, "answered only after %.1f s" % waited)
    expect_equal(f.records_frame, b"", "records frame of a fetch that timed out")
    expect_equal((f.log_start_offset, f.log_end_offset), (0, 1), "offsets")


@check("list-offsets")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    expect_equal(c.produce(topic, 0, [rec(b"a", ts=BASE_TS)]).base_offset, 0, "offset")
    c.produce(topic, 0, [rec(b"b", ts=BASE_TS + 1000)])
    c.produce(topic, 0, [rec(b"c", ts=BASE_TS + 2000)])
    # one batch with several timestamps, the lookup must look into the records
    c.produce(topic, 0, [rec(b"d", ts=BASE_TS + 3000), rec(b"e", ts=BASE_TS + 4000),
                         rec(b"f", ts=BASE_TS + 5000)])
    expect_equal(c.list_offsets(topic, 0, EARLIEST), 0, "earliest")
    expect_equal(c.list_offsets(topic, 0, LATEST), 6, "latest")
    for spec, wanted in [(0, 0), (BASE_TS - 1, 0), (BASE_TS, 0), (BASE_TS + 1, 1),
                         (BASE_TS + 1000, 1), (BASE_TS + 1500, 2), (BASE_TS + 2000, 2),
                         (BASE_TS + 3500, 4), (BASE_TS + 4000, 4), (BASE_TS + 4001, 5),
                         (BASE_TS + 5001, 6)]:
        expect_equal(c.list_offsets(topic, 0, spec), wanted, "offset for time %d" % spec)
    expect_error("invalidRequest", c.list_offsets, topic, 0, -3)


# Topics ---------------------------------------------------------------------------------------

@check("create-topic-settings")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    settings = {"fsync": "never", "retention.ms": "86_400_000", "segment.bytes": "1048576"}
    expect_equal(c.create_topic(topic, 3, settings), (topic, 3), "createTopic reply")
    d = c.describe_topic(topic)
    expect_equal(d.name, topic, "describeTopic name")
    expect_equal(d.topic_settings, settings, "topicSettings (as sent)")
    expect_equal(d.settings.get("fsync"), "never", "settings in force: fsync")
    expect_equal(d.settings.get("retention.ms", "").replace("_", ""), "86400000",
                 "settings in force: retention.ms")
    expect_equal([p.partition for p in d.partitions], [0, 1, 2], "describeTopic partitions")
    m = c.metadata([topic])
    expect_equal([(t.name, t.error_code, len(t.partitions)) for t in m.topics], [(topic, 0, 3)],
                 "metadata")
    r = c.produce(topic, 2, [rec(b"x")])
    expect_equal((r.partition, r.base_offset, r.durability), (2, 0, 0),
                 "produce under fsync: never (durability pageCache)")
    expect_error("topicAlreadyExists", c.create_topic, topic, 3, settings)


@check("create-topic-unsorted-settings")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    body = create_topic_body(topic, 1, [("segment.bytes", "1048576"), ("fsync", "never")],
                             sort=False)
    reply = c.receive_raw(c.send(OP_CREATE_TOPIC, body))
    expect_error_reply(reply, "malformedRequest", reply.header.correlation_id, OP_CREATE_TOPIC)
    body = create_topic_body(topic, 1, [("fsync", "never"), ("fsync", "never")], sort=False)
    reply = c.receive_raw(c.send(OP_CREATE_TOPIC, body))
    expect_error_reply(reply, "malformedRequest", reply.header.correlation_id, OP_CREATE_TOPIC)
    expect(not topic_exists(c, topic), "the refused topic was created")


@check("create-topic-unknown-setting")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    e = expect_error("invalidRequest", c.create_topic, topic, 1, {"no.such.setting": "1"})
    expect("no.such.setting" in e.message, "message does not name the key: %r" % e.message)
    e = expect_error("invalidRequest", c.create_topic, topic, 1, {"fsync": "sometimes"})
    expect("fsync" in e.message, "message does not name the key: %r" % e.message)
    expect_error("invalidRequest", c.create_topic, topic, 0)
    expect_error("invalidRequest", c.create_topic, topic, 10_001)
    expect(not topic_exists(c, topic), "the refused topic was created")


@check("metadata-without-auto-creation")
def _(ctx):
    c = ctx.client()
    existing, missing = ctx.name("a"), ctx.name("b")
    c.create_topic(existing, 2)
    m = c.metadata([missing, existing, "bad name", existing], allow_auto_creation=False)
    expect(m.broker_version, "empty brokerVersion")
    got = [(t.name, t.error_code, [p.partition for p in t.partitions]) for t in m.topics]
    expect_equal(got, [(missing, 7, []), (existing, 0, [0, 1]), ("bad name", 6, []),
                       (existing, 0, [0, 1])], "metadata topics (name, errorCode, partitions)")
    expect(not topic_exists(c, missing), "metadata without allowAutoCreation created the topic")


@check("metadata-with-auto-creation")
def _(ctx):
    c = ctx.client()
    missing = ctx.name()
    m = c.metadata([missing], allow_auto_creation=True)
    got = [(t.name, t.error_code, [(p.partition, p.log_start_offset, p.log_end_offset)
                                   for p in t.partitions]) for t in m.topics]
    expect_equal(got, [(missing, 0, [(0, 0, 0)])], "metadata of an auto-created topic")
    expect(topic_exists(c, missing), "the topic does not exist after auto-creation")


@check("metadata-all-topics")
def _(ctx):
    c = ctx.client()
    names = [ctx.name("z"), ctx.name("a")]
    for n in names:
        c.create_topic(n, 1)
    m = c.metadata([], allow_auto_creation=False)
    listed = [t.name for t in m.topics]
    expect_equal(listed, sorted(listed, key=lambda s: s.encode()), "order of every topic")
    for n in names:
        expect(n in listed, "topic %s missing from the full list" % n)


@check("delete-topic")
def _(ctx):
    c, waiter = ctx.client(), ctx.client()
    topic = ctx.name()
    c.create_topic(topic, 2)
    c.produce(topic, 1, [rec(b"a"), rec(b"b")])
    corr = waiter.send_fetch(topic, 1, 2, max_wait_ms=10_000)
    expect_still_waiting(waiter, corr, 0.3, "a fetch at the end was answered before the topic was deleted")
    expect_equal(c.delete_topic(topic), (topic, 2), "deleteTopic reply")
    expect_error("unknownTopic", waiter.receive_fetch, corr, 5)
    expect_error("unknownTopic", c.describe_topic, topic)
    expect_equal(c.produce(topic, 0, [rec(b"new")]).base_offset, 0,
                 "first offset of a topic created again under the same name")


# Consumer groups ------------------------------------------------------------------------------

@check("group-join-heartbeat-commit-leave")
def _(ctx):
    c = ctx.client()
    topic, group = ctx.name("t"), ctx.name("g")
    c.create_topic(topic, 3)
    a = c.join_group(group, [topic], session_timeout_ms=9_000)
    expect(a.member_id, "empty member id")
    expect(a.generation >= 1, "generation %d" % a.generation)
    expect_equal(a.heartbeat_interval_ms, 3_000, "heartbeatIntervalMilliseconds")
    expect_equal(a.partitions, [(topic, 0), (topic, 1), (topic, 2)], "assignment")
    hb = c.heartbeat(group, a.member_id, a.generation, a.partitions)
    expect_equal((hb.member_id, hb.generation, hb.partitions),
                 (a.member_id, a.generation, a.partitions), "heartbeat assignment")
    c.commit_offsets(group, a.member_id, a.generation, [
        CommittedOffset(topic, 1, 7, ""), CommittedOffset(topic, 0, 5, "meta data ü")])
    got = c.fetch_offsets(group, [(topic, 2), (topic, 0), (topic, 1)])
    expect_equal(got, [CommittedOffset(topic, 0, 5, "meta data ü"),
                       CommittedOffset(topic, 1, 7, ""), CommittedOffset(topic, 2, -1, "")],
                 "fetchOffsets (sorted, -1 for none)")
    expect_equal(c.fetch_offsets(group, []), [CommittedOffset(topic, 0, 5, "meta data ü"),
                                              CommittedOffset(topic, 1, 7, "")],
                 "fetchOffsets of everything committed")
    d = c.describe_group(group)
    expect_equal((d.group, d.state, d.generation), (group, 1, a.generation),
                 "describeGroup (group, state stable, generation)")
    expect_equal(d.members, [(a.member_id, a.partitions)], "describeGroup members")
    expect(any(g.name == group and g.member_count == 1 for g in c.list_groups()),
           "listGroups does not show the group with one member")
    c.leave_group(group, a.member_id)
    expect_error("unknownMember", c.heartbeat, group, a.member_id, a.generation, [])
    expect_equal(len(c.fetch_offsets(group, [])), 2, "offsets kept after the last member left")
    c.leave_group(group, a.member_id)  # leaving again succeeds and does nothing


@check("group-fencing")
def _(ctx):
    c = ctx.client()
    topic, group = ctx.name("t"), ctx.name("g")
    c.create_topic(topic, 1)
    a = c.join_group(group, [topic])
    expect_error("staleGeneration", c.commit_offsets, group, a.member_id, a.generation + 1,
                 [CommittedOffset(topic, 0, 1)])
    expect_error("groupNotEmpty", c.commit_offsets, group, "", -1,
                 [CommittedOffset(topic, 0, 1)])
    expect_error("unknownMember", c.commit_offsets, group, "member-nobody", a.generation,
                 [CommittedOffset(topic, 0, 1)])
    expect_error("invalidRequest", c.commit_offsets, group, a.member_id, a.generation,
                 [CommittedOffset(topic, 0, -5)])
    expect_error("invalidRequest", c.join_group, group, [topic], session_timeout_ms=99)
    expect_error("invalidRequest", c.join_group, "bad group", [topic])
    c.leave_group(group, a.member_id)
    c.commit_offsets(group, "", -1, [CommittedOffset(topic, 0, 1)])  # administrative


@check("group-fetch-offsets-unknown-topic")
def _(ctx):
    c = ctx.client()
    topic, group = ctx.name("t"), ctx.name("g")
    got = c.fetch_offsets(group, [(topic, 0)])
    expect_equal(got, [CommittedOffset(topic, 0, -1, "")], "fetchOffsets of a missing topic")
    expect(not topic_exists(c, topic), "fetchOffsets created the topic")


@check("group-join-creates-topic")
def _(ctx):
    c = ctx.client()
    topic, group = ctx.name("t"), ctx.name("g")
    a = c.join_group(group, [topic])
    expect_equal(a.partitions, [(topic, 0)], "assignment of an auto-created topic")
    expect(topic_exists(c, topic), "joinGroup did not create the topic")
    c.leave_group(group, a.member_id)


# Idempotent producer --------------------------------------------------------------------------

@check("idempotent-producer")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    c.produce(topic, 0, [rec(b"plain")])  # offset 0, not idempotent
    pid, epoch = c.init_producer_id()
    expect(pid >= 0, "producerID %d" % pid)
    expect_equal(epoch, 0, "producerEpoch")
    first = build_batch([rec(b"a"), rec(b"b")], pid, epoch, 0)
    r = c.produce_batch(topic, 0, first)
    expect_equal(r.base_offset, 1, "baseOffset of sequence 0")
    again = c.produce_batch(topic, 0, first)
    expect_equal(again.base_offset, 1, "baseOffset of the same batch sent again")
    expect_equal(c.list_offsets(topic, 0, LATEST), 3, "log end after the duplicate")
    gap = build_batch([rec(b"d")], pid, epoch, 5)
    e = expect_error("outOfOrderSequence", c.produce_batch, topic, 0, gap)
    expect_equal(e.details.get("expected"), 2, "details.expected")
    r = c.produce_batch(topic, 0, set_batch_sequence(gap, 2))
    expect_equal(r.base_offset, 3, "baseOffset of the renumbered batch")
    # a sequence at or below the last stored one that matches no remembered batch
    expect_error("duplicateSequence", c.produce_batch, topic, 0,
                 build_batch([rec(b"b")], pid, epoch, 1))
    expect_equal(c.list_offsets(topic, 0, LATEST), 4, "log end after the duplicates")
    f = c.fetch(topic, 0, 1)
    b = f.batches[0]
    expect_equal((b.producer_id, b.producer_epoch, b.base_sequence), (pid, epoch, 0),
                 "producer fields of the fetched batch")
    # a producer id the partition has not seen must start at sequence 0
    other, _ = c.init_producer_id()
    e = expect_error("outOfOrderSequence", c.produce_batch, topic, 0,
                     build_batch([rec(b"x")], other, 0, 3))
    expect_equal(e.details.get("expected"), 0, "details.expected for a new producer")


# Error replies --------------------------------------------------------------------------------

@check("error-unknown-topic")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    e = expect_error("unknownTopic", c.describe_topic, topic)
    expect_equal(e.details, {}, "details")
    expect_error("unknownTopic", c.delete_topic, topic)


@check("error-unknown-partition")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    c.create_topic(topic, 2)
    expect_error("unknownPartition", c.fetch, topic, 2, 0)
    expect_error("unknownPartition", c.produce, topic, -1, [rec(b"x")])
    expect_error("unknownPartition", c.list_offsets, topic, 9, LATEST)


@check("error-offset-out-of-range")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    c.produce(topic, 0, [rec(b"a"), rec(b"b")])
    for offset in (7, 3, -1):
        e = expect_error("offsetOutOfRange", c.fetch, topic, 0, offset)
        expect_equal(e.details, {"earliest": 0, "latest": 2}, "details at offset %d" % offset)


@check("error-invalid-topic-name")
def _(ctx):
    c = ctx.client()
    for name in ("bad name", "..", ".", "", "a" * 250, "tópico", "a/b"):
        expect_error("invalidTopicName", c.produce, name, 0, [rec(b"x")])
    expect_error("invalidTopicName", c.create_topic, "bad*name", 1)
    expect_error("invalidTopicName", c.describe_topic, "..")
    longest = ctx.name() + "-"
    longest += "x" * (249 - len(longest))
    expect_equal(c.create_topic(longest, 1), (longest, 1), "createTopic of a 249-byte name")
    expect_error("invalidTopicName", c.create_topic, longest + "x", 1)


@check("error-corrupt-batch-crc")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    c.produce(topic, 0, [rec(b"good")])
    good = build_batch([rec(b"payload", b"k")])
    bad_crc = good[:13] + struct.pack("<I", (struct.unpack_from("<I", good, 13)[0] ^ 1)) \
        + good[17:]
    expect_error("corruptBatch", c.produce_batch, topic, 0, bad_crc)
    flipped = bytearray(good)
    flipped[-1] ^= 0xFF   # a record byte changed, CRC not recomputed
    expect_error("corruptBatch", c.produce_batch, topic, 0, bytes(flipped))
    expect_error("corruptBatch", c.produce_batch, topic, 0, good[:40])  # shorter than a header
    expect_error("corruptBatch", c.produce_batch, topic, 0, good + b"\x00")  # length != frame
    expect_equal(c.list_offsets(topic, 0, LATEST), 1, "log end after refused batches")


def _batch_from_records(record_bytes, record_count, last_offset_delta):
    tail = struct.pack("<HIqqqhiI", 0, last_offset_delta, BASE_TS, BASE_TS, -1, -1, -1,
                       record_count) + record_bytes
    return struct.pack("<qIBI", 0, 45 + len(record_bytes), 1, crc32c(tail)) + tail


@check("error-corrupt-batch-structure")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    c.create_topic(topic, 1)
    one = Record(b"v", None, [("Q", b"x")], BASE_TS)
    cases = [
        ("no records", _batch_from_records(b"", 0, 0)),
        ("offsetDelta 1 for record 0", _batch_from_records(encode_record(one, 1, BASE_TS), 1, 0)),
        ("header name not UTF-8", _batch_from_records(
            encode_record(one, 0, BASE_TS).replace(b"\x02Q", b"\x02\xff"), 1, 0)),
        ("record length one too long", _batch_from_records(
            bytes([encode_record(one, 0, BASE_TS)[0] + 1]) + encode_record(one, 0, BASE_TS)[1:]
            + b"\x00", 1, 0)),
        ("trailing byte after the last record", _batch_from_records(
            encode_record(one, 0, BASE_TS) + b"\x00", 1, 0)),
        ("batchLength under 45", bytes(8) + struct.pack("<IB", 44, 1) + bytes(44)),
    ]
    for what, batch in cases:
        try:
            expect_error("corruptBatch", c.produce_batch, topic, 0, batch)
        except CheckFailed as e:
            raise CheckFailed("%s: %s" % (what, e))
    expect_equal(c.list_offsets(topic, 0, LATEST), 0, "log end after refused batches")


@check("error-unsupported-version")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    c.create_topic(topic, 1)
    corr = c.next_id()
    reply = raw_request(c, FrameHeader(OP_LIST_OFFSETS, corr, version=2),
                        [list_offsets_body(topic, 0, LATEST)])
    expect_error_reply(reply, "unsupportedVersion", corr, OP_LIST_OFFSETS)
    # checked before the frames: a version-2 request with a wrong frame count
    corr = c.next_id()
    reply = raw_request(c, FrameHeader(OP_PRODUCE, corr, version=2), [])
    expect_error_reply(reply, "unsupportedVersion", corr, OP_PRODUCE)
    # a batch with magic 2
    e = expect_error("unsupportedVersion", c.produce_batch, topic, 0,
                     build_batch([rec(b"x")], magic=2))
    expect_equal(e.details, {}, "details")


@check("conditional-append-and-fetch-key")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    order, other = b"order-7", b"order-8"
    placed = c.produce_batch(topic, 0, build_batch([rec(b"placed", order)]), condition=(order, -1))
    expect_equal(placed.base_offset, 0, "a new key's first conditional append")
    e = expect_error("keyConflict", c.produce_batch, topic, 0, build_batch([rec(b"again", order)]),
                     condition=(order, -1))
    expect_equal(e.details, {"lastOffset": 0}, "keyConflict details")
    c.produce(topic, 0, [rec(b"x", other), rec(b"y", other)])
    paid = c.produce_batch(topic, 0, build_batch([rec(b"reserved", order), rec(b"paid", order)]),
                           condition=(order, 0))
    expect_equal(paid.base_offset, 3, "a conditional append at the key's last offset")
    e = expect_error("keyConflict", c.produce_batch, topic, 0, build_batch([rec(b"late", order)]),
                     condition=(order, 0))
    expect_equal(e.details, {"lastOffset": 4}, "the key's last offset is its batch's last record")
    # A read by key, page by page (one batch per page at maxBytes 1).
    values, offset, last = [], 0, None
    while True:
        next_offset, last, records = c.fetch_key(topic, 0, order, offset, max_bytes=1)
        values += [x.value for x in records]
        if next_offset > last:
            break
        offset = next_offset
    expect_equal(values, [b"placed", b"reserved", b"paid"], "the key's records in order")
    expect_equal(last, 4, "fetchKey lastOffset")
    next_offset, last, records = c.fetch_key(topic, 0, b"nobody", 0)
    expect_equal((last, records), (-1, []), "a key without records")
    expect_error("offsetOutOfRange", c.fetch_key, topic, 0, order, 99)


@check("error-unsupported-operation")
def _(ctx):
    c = ctx.client()
    for op in (0, 17, 255):
        corr = c.next_id()
        reply = raw_request(c, FrameHeader(op, corr), [b""])
        expect_error_reply(reply, "unsupportedOperation", corr, op)


@check("error-malformed-body")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    c.create_topic(topic, 1)
    good = list_offsets_body(topic, 0, LATEST)
    cases = [
        ("trailing byte", OP_LIST_OFFSETS, [good + b"\x00"]),
        ("short body", OP_LIST_OFFSETS, [good[:-1]]),
        ("empty body", OP_LIST_OFFSETS, [b""]),
        ("bad UTF-8", OP_LIST_OFFSETS, [b"\x02\x00\xff\xfe" + good[-12:]]),
        ("array count that cannot fit", OP_METADATA, [struct.pack("<I", 1000) + b"\x00"]),
        ("array count over 100,000", OP_METADATA,
         [struct.pack("<I", 100_001) + b"\x00\x00" * 100_001 + b"\x00"]),
        ("produce without a batch frame", OP_PRODUCE, [produce_body(topic, 0)]),
        ("fetch with an extra frame", OP_FETCH, [fetch_body(topic, 0, 0), b""]),
        ("no body frame", OP_LIST_OFFSETS, []),
        ("metadata allowAutoCreation 2", OP_METADATA, [struct.pack("<I", 0) + b"\x02"]),
    ]
    for what, op, frames in cases:
        corr = c.next_id()
        reply = raw_request(c, FrameHeader(op, corr), frames)
        try:
            expect_error_reply(reply, "malformedRequest", corr, op)
        except CheckFailed as e:
            raise CheckFailed("%s: %s" % (what, e))


@check("header-reserved-bits-ignored")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    c.create_topic(topic, 1)
    for flags, reserved in ((0x02, 0), (0xFE, 0), (0x00, 0xBEEF)):
        corr = c.next_id()
        reply = raw_request(c, FrameHeader(OP_LIST_OFFSETS, corr, flags=flags, reserved=reserved),
                            [list_offsets_body(topic, 0, LATEST)])
        expect_equal((reply.header.error_code, reply.header.flags, reply.header.reserved),
                     (0, 0x01, 0), "reply to flags 0x%02x, reserved 0x%04x" % (flags, reserved))


@check("bad-header-dropped")
def _(ctx):
    c = ctx.client()
    corr = c.next_id()
    c.send_frames([b"X" + FrameHeader(OP_METADATA, corr).encode()[1:], metadata_body([], False)],
                  corr, OP_METADATA)
    corr2 = c.next_id()
    c.send_frames([FrameHeader(OP_METADATA, corr2).encode() + b"\x00",
                   metadata_body([], False)], corr2, OP_METADATA)
    for cid in (corr, corr2):
        try:
            c.receive_raw(cid, timeout=0.5)
            raise CheckFailed("a message with an unreadable header was answered")
        except Timeout:
            pass
    c.metadata([])  # the connection still works


# Strict rules (§7) ----------------------------------------------------------------------------

def expect_malformed_header(ctx, **header_fields):
    """A request whose header carries `header_fields` (the reply flag, an error code) is refused."""
    c = ctx.client()
    topic = ctx.name()
    c.create_topic(topic, 1)
    corr = c.next_id()
    reply = raw_request(c, FrameHeader(OP_LIST_OFFSETS, corr, **header_fields),
                        [list_offsets_body(topic, 0, LATEST)])
    expect_error_reply(reply, "malformedRequest", corr, OP_LIST_OFFSETS)


@check("strict-request-with-reply-flag")
def _(ctx):
    expect_malformed_header(ctx, flags=0x01)


@check("strict-request-with-error-code")
def _(ctx):
    expect_malformed_header(ctx, error_code=7)


@check("strict-fetch-does-not-create")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    expect_error("unknownTopic", c.fetch, topic, 0, 0)
    expect_error("unknownTopic", c.fetch, topic, 0, 0, max_wait_ms=100)
    expect(not topic_exists(c, topic), "fetch created the topic")


@check("strict-list-offsets-does-not-create")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    expect_error("unknownTopic", c.list_offsets, topic, 0, LATEST)
    expect(not topic_exists(c, topic), "listOffsets created the topic")


@check("strict-commit-does-not-create")
def _(ctx):
    c = ctx.client()
    topic, group = ctx.name("t"), ctx.name("g")
    expect_error("unknownTopic", c.commit_offsets, group, "", -1,
                 [CommittedOffset(topic, 0, 0)])
    expect(not topic_exists(c, topic), "commitOffsets created the topic")


def inconsistent(ctx, field, **overrides):
    c = ctx.client()
    topic = ctx.name()
    c.produce(topic, 0, [rec(b"ok")])
    records = [rec(b"a", ts=BASE_TS + 10), rec(b"b", ts=BASE_TS + 30), rec(b"c", ts=BASE_TS + 20)]
    e = expect_error("inconsistentBatch", c.produce_batch, topic, 0,
                     build_batch(records, **overrides))
    expect_equal(e.details.get("field"), field, "details.field")
    expect_equal(c.list_offsets(topic, 0, LATEST), 1, "log end after the refused batch")


@check("strict-inconsistent-max-timestamp")
def _(ctx):
    inconsistent(ctx, 31, max_timestamp=BASE_TS + 20)  # lower than record 1's


@check("strict-inconsistent-max-timestamp-too-high")
def _(ctx):
    inconsistent(ctx, 31, max_timestamp=BASE_TS + 31)


@check("strict-inconsistent-first-timestamp")
def _(ctx):
    # record 0's timestampDelta is 5, so its timestamp is not the header's firstTimestamp
    # (moving firstTimestamp alone would move every record's timestamp with it)
    c = ctx.client()
    topic = ctx.name()
    c.produce(topic, 0, [rec(b"ok")])
    e = expect_error("inconsistentBatch", c.produce_batch, topic, 0, _batch_with_delta0(5))
    expect_equal(e.details.get("field"), 23, "details.field")
    expect_equal(c.list_offsets(topic, 0, LATEST), 1, "log end after the refused batch")


def _batch_with_delta0(delta):
    """A batch whose record 0 has timestampDelta `delta` (so its timestamp differs from
    firstTimestamp), with maxTimestamp consistent with the records."""
    first = BASE_TS
    r0 = Record(b"a", None, [], first + delta)
    r1 = Record(b"b", None, [], first + 1)
    body = encode_record(r0, 0, first) + encode_record(r1, 1, first)
    tail = struct.pack("<HIqqqhiI", 0, 1, first, first + max(delta, 1), -1, -1, -1, 2) + body
    return struct.pack("<qIBI", 0, 45 + len(body), 1, crc32c(tail)) + tail


@check("strict-inconsistent-last-offset-delta")
def _(ctx):
    inconsistent(ctx, 19, last_offset_delta=1)


@check("strict-inconsistent-record-count")
def _(ctx):
    inconsistent(ctx, 53, record_count=2)


@check("strict-inconsistent-attributes")
def _(ctx):
    inconsistent(ctx, 17, attributes=1)


# Interoperability with the Swift tools ---------------------------------------------------------

def interop_records():
    return [
        rec(b"plain text", b"key-1", [("a", b"1"), ("a", b"2"), ("trace", b"abc")],
            BASE_TS + 1),
        rec(bytes(range(256)), bytes([0, 255, 10, 13, 9, 0x80]), [("bin", b"\x00\xff\x0a")],
            BASE_TS + 50),
        rec("unicode é e\u0301 \u2028 \"q\" \\ \x00 \U0001F600".encode(), b"", [],
            BASE_TS - 1000),
        rec(b"", None, [("empty", b""), ("", b"nameless")], BASE_TS + 7),
        rec(b"\n\r\t{\"json\": true}\n", "ключ".encode(), [("h\u00e9", "valü".encode())],
            BASE_TS + 50),
    ]


def _json_bytes(obj, key):
    """Bytes of `key` (text) or `keyBase64` in a JSON record; None when neither is there."""
    if key in obj:
        if obj[key] is None:
            return None
        return obj[key].encode("utf-8")
    if key + "Base64" in obj:
        return base64.b64decode(obj[key + "Base64"], validate=True)
    return None


def json_record(line):
    obj = json.loads(line)
    headers = [(h["name"], _json_bytes(h, "value")) for h in obj.get("headers", [])]
    value = _json_bytes(obj, "value")
    return obj, Record(value if value is not None else b"", _json_bytes(obj, "key"), headers,
                       obj.get("timestamp"), obj.get("offset"))


def produce_for_interop(ctx):
    c = ctx.client()
    topic = ctx.name()
    records = interop_records()
    c.produce(topic, 0, records[:2])
    c.produce(topic, 0, records[2:])
    return topic, [Record(r.value, r.key, r.headers, r.timestamp, i)
                   for i, r in enumerate(records)]


def compare_cli_json(out, topic, wanted):
    lines = [l for l in out.decode("utf-8").split("\n") if l]
    got = []
    for line in lines:
        obj, r = json_record(line)
        expect_equal(obj.get("topic"), topic, "topic in JSON")
        expect_equal(obj.get("partition"), 0, "partition in JSON")
        got.append(r)
    same_records(got, wanted, "records printed by spool")


@check("interop-python-to-spool-tail")
def _(ctx):
    topic, wanted = produce_for_interop(ctx)
    out = ctx.cli("tail", topic, "--from-beginning", "--exit-at-end", "--format", "json")
    compare_cli_json(out, topic, wanted)


@check("interop-python-to-spool-replay")
def _(ctx):
    topic, wanted = produce_for_interop(ctx)
    out = ctx.cli("replay", topic, "--from", "beginning", "--format", "json")
    compare_cli_json(out, topic, wanted)


@check("interop-spool-publish-to-python")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    c.create_topic(topic, 1)
    before = int(time.time() * 1000)
    ctx.cli("publish", topic, "--key", "order-1", "--header", "source=cli", "--header",
            "source=again", "--header", "trace=a b c", '{"id": 1, "name": "é"}')
    ctx.cli("publish", topic, "no key here")
    after = int(time.time() * 1000)
    got = all_records(c, topic)
    same_records(got, [
        Record('{"id": 1, "name": "é"}'.encode(), b"order-1",
               [("source", b"cli"), ("source", b"again"), ("trace", b"a b c")], None, 0),
        Record(b"no key here", None, [], None, 1)], "records published by spool")
    for r in got:
        expect(before - 1000 <= r.timestamp <= after + 1000,
               "timestamp %d outside the time of the publish" % r.timestamp)


@check("interop-spool-publish-file-to-python")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    c.create_topic(topic, 1)
    payload = bytes(range(256)) * 3 + b"\x00\n"
    with tempfile.NamedTemporaryFile(prefix="spool-conformance-") as f:
        f.write(payload)
        f.flush()
        ctx.cli("publish", topic, "--key", "file", "--file", f.name)
    same_records(all_records(c, topic), [Record(payload, b"file", [], None, 0)],
                 "record published from a file")


@check("interop-spool-publish-json-to-python")
def _(ctx):
    c = ctx.client()
    topic = ctx.name()
    c.create_topic(topic, 1)
    wanted = [Record(r.value, r.key, r.headers, r.timestamp, i)
              for i, r in enumerate(interop_records())]
    lines = []
    for r in wanted:
        obj = {"timestamp": r.timestamp, "valueBase64": base64.b64encode(r.value).decode()}
        if r.key is not None:
            obj["keyBase64"] = base64.b64encode(r.key).decode()
        obj["headers"] = [{"name": n, "valueBase64": base64.b64encode(v).decode()}
                          for n, v in r.headers]
        lines.append(json.dumps(obj))
    ctx.cli("publish", topic, "--format", "json", "--partition", "0",
            stdin=("\n".join(lines) + "\n").encode())
    same_records(all_records(c, topic), wanted, "records published by spool --format json")


# Runner ---------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", required=True, help="broker endpoint, tcp://127.0.0.1:PORT")
    parser.add_argument("--spool", required=True, help="path of the spool CLI")
    parser.add_argument("--only", action="append", default=[],
                        help="run only checks whose name contains this (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="print tracebacks of failures")
    args = parser.parse_args()

    ctx = Context(args.broker, args.spool)
    # The broker must answer (any reply will do) before the checks start.
    probe = SpoolClient(args.broker, timeout=5)
    try:
        probe.receive_raw(probe.send(OP_METADATA, metadata_body([], False)))
    except Timeout:
        print("conformance: the broker at %s does not answer" % args.broker)
        print("conformance: 0 checks, 1 failed")
        return 1
    finally:
        probe.close()

    selected = [(n, f) for n, f in CHECKS if not args.only or any(o in n for o in args.only)]
    failed = 0
    for name, fn in selected:
        ctx.check_name = name
        try:
            fn(ctx)
            print("ok %s" % name, flush=True)
        except CheckFailed as e:
            failed += 1
            print("FAIL %s: %s" % (name, e), flush=True)
        except Exception as e:  # a crash of a check is a failure too
            failed += 1
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e), flush=True)
            if args.verbose:
                traceback.print_exc()
        finally:
            ctx.close_clients()
    print("conformance: %d checks, %d failed" % (len(selected), failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
