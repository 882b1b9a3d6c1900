"""A small Python client for Spool, written from docs/protocol.md alone.

Standard library plus pyzmq. The layers, bottom up:

* CRC-32C, varints and zig-zag integers (§5.3, §5.4)
* the record batch: ``build_batch`` and ``parse_batches`` (§5)
* the 16-byte frame header: ``FrameHeader`` (§3)
* body encoders and decoders: ``BodyWriter`` / ``BodyReader`` and one pair per operation (§4)
* ``SpoolClient``: one DEALER connection with correlation ids, many requests in flight (§1)

Error replies are raised as ``SpoolError`` (code, name, message, details, §6). A reply that does
not follow the protocol raises ``ProtocolViolation``.
"""

import itertools
import struct
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import zmq

PROTOCOL_VERSION = 1
HEADER_MAGIC = 0x53
BATCH_MAGIC = 1
HEADER_SIZE = 16
BATCH_HEADER_SIZE = 57
FLAG_REPLY = 0x01

# --------------------------------------------------------------------------------------------
# Operations (§4) and error codes (§6.1)

OP_PRODUCE = 1
OP_FETCH = 2
OP_LIST_OFFSETS = 3
OP_METADATA = 4
OP_CREATE_TOPIC = 5
OP_INIT_PRODUCER_ID = 6
OP_JOIN_GROUP = 7
OP_HEARTBEAT = 8
OP_LEAVE_GROUP = 9
OP_COMMIT_OFFSETS = 10
OP_FETCH_OFFSETS = 11
OP_LIST_GROUPS = 12
OP_DESCRIBE_GROUP = 13
OP_DESCRIBE_TOPIC = 14
OP_DELETE_TOPIC = 15
OP_FETCH_KEY = 16

ERROR_NAMES = {
    0: "none",
    1: "unknown",
    2: "unsupportedVersion",
    3: "unsupportedOperation",
    4: "malformedRequest",
    5: "corruptBatch",
    6: "invalidTopicName",
    7: "unknownTopic",
    8: "unknownPartition",
    9: "recordTooLarge",
    10: "offsetOutOfRange",
    11: "notAuthorized",
    12: "topicAlreadyExists",
    13: "storageError",
    14: "brokerShuttingDown",
    15: "invalidRequest",
    16: "outOfOrderSequence",
    17: "duplicateSequence",
    18: "unknownMember",
    19: "staleGeneration",
    20: "groupNotEmpty",
    21: "inconsistentBatch",
    22: "keyConflict",
}
ERROR_CODES = {name: code for code, name in ERROR_NAMES.items()}
RETRIABLE = {"storageError", "brokerShuttingDown", "outOfOrderSequence"}

EARLIEST = -2  # listOffsets spec values (§4.4)
LATEST = -1

DURABILITY_NAMES = {0: "pageCache", 1: "syncScheduled", 2: "onDisk"}
GROUP_STATE_NAMES = {0: "empty", 1: "stable", 2: "rebalancing"}


def error_name(code: int) -> str:
    return ERROR_NAMES.get(code, "code%d" % code)


class SpoolError(Exception):
    """An error reply from the broker (§6.2)."""

    def __init__(self, code: int, message: str, details: Dict[str, int], op_code: int = 0):
        self.code = code
        self.name = error_name(code)
        self.message = message
        self.details = dict(details)
        self.op_code = op_code
        super().__init__("%s (%d): %s%s" % (self.name, code, message,
                                            " %r" % self.details if self.details else ""))

    @property
    def retriable(self) -> bool:
        return self.name in RETRIABLE


class ProtocolViolation(Exception):
    """A reply that does not follow the protocol."""


class Timeout(Exception):
    """No reply within the client's timeout (the broker keeps no timeouts of its own, §1.2)."""


# --------------------------------------------------------------------------------------------
# CRC-32C (§5.3), table-driven

def _make_crc32c_table() -> List[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _make_crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    crc ^= 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# --------------------------------------------------------------------------------------------
# Varints (§5.4)

def encode_varint(value: int) -> bytes:
    if value < 0 or value >= 1 << 64:
        raise ValueError("varint out of range: %d" % value)
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_zigzag(value: int) -> bytes:
    if not -(1 << 63) <= value < 1 << 63:
        raise ValueError("zigzag out of range: %d" % value)
    return encode_varint(((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF)


def decode_varint(data: bytes, pos: int) -> Tuple[int, int]:
    """Returns (value, new position). At most 10 bytes, 64 bits."""
    result = 0
    for i in range(10):
        if pos >= len(data):
            raise ValueError("varint runs past the end")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if result >= 1 << 64:
                raise ValueError("varint over 64 bits")
            return result, pos
    raise ValueError("varint longer than 10 bytes")


def decode_zigzag(data: bytes, pos: int) -> Tuple[int, int]:
    v, pos = decode_varint(data, pos)
    return (v >> 1) ^ -(v & 1), pos


# --------------------------------------------------------------------------------------------
# Record batch (§5)

@dataclass
class Record:
    """One record. ``key`` None means no key (distinct from b""). Header values are bytes."""
    value: bytes = b""
    key: Optional[bytes] = None
    headers: List[Tuple[str, bytes]] = field(default_factory=list)
    timestamp: Optional[int] = None  # ms since the epoch; None = now, when building
    offset: Optional[int] = None     # set when parsed from a fetch


@dataclass
class Batch:
    base_offset: int
    batch_length: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int
    records: List[Record]
    raw: bytes


_BATCH_HEADER = struct.Struct("<qIBIHIqqqhiI")  # 57 bytes
assert _BATCH_HEADER.size == BATCH_HEADER_SIZE


def encode_record(record: Record, offset_delta: int, first_timestamp: int) -> bytes:
    body = bytearray()
    body.append(0)  # attributes
    body += encode_zigzag(record.timestamp - first_timestamp)
    body += encode_zigzag(offset_delta)
    if record.key is None:
        body += encode_zigzag(-1)
    else:
        body += encode_zigzag(len(record.key)) + bytes(record.key)
    body += encode_zigzag(len(record.value)) + bytes(record.value)
    body += encode_varint(len(record.headers))
    for name, value in record.headers:
        raw_name = name.encode("utf-8")
        body += encode_zigzag(len(raw_name)) + raw_name
        body += encode_zigzag(len(value)) + bytes(value)
    return encode_varint(len(body)) + bytes(body)


def build_batch(records: Sequence[Record], producer_id: int = -1, producer_epoch: int = -1,
                base_sequence: int = -1, **overrides) -> bytes:
    """Builds one record batch (base offset 0), CRC included.

    ``overrides`` sets header fields to other values than the consistent ones, for tests:
    base_offset, batch_length, magic, crc, attributes, last_offset_delta, first_timestamp,
    max_timestamp, record_count. The CRC is computed after the overrides unless ``crc`` is given.
    """
    if not records:
        raise ValueError("a batch holds at least one record")
    now = int(time.time() * 1000)
    stamped = [r if r.timestamp is not None else Record(r.value, r.key, r.headers, now)
               for r in records]
    first_timestamp = stamped[0].timestamp
    record_bytes = b"".join(encode_record(r, i, first_timestamp) for i, r in enumerate(stamped))
    fields = dict(
        base_offset=0,
        batch_length=BATCH_HEADER_SIZE - 12 + len(record_bytes),
        magic=BATCH_MAGIC,
        attributes=0,
        last_offset_delta=len(stamped) - 1,
        first_timestamp=first_timestamp,
        max_timestamp=max(r.timestamp for r in stamped),
        record_count=len(stamped),
    )
    crc_override = overrides.pop("crc", None)
    unknown = set(overrides) - set(fields)
    if unknown:
        raise ValueError("unknown batch fields: %s" % ", ".join(sorted(unknown)))
    fields.update(overrides)
    tail = struct.pack("<HIqqqhiI", fields["attributes"], fields["last_offset_delta"],
                       fields["first_timestamp"], fields["max_timestamp"], producer_id,
                       producer_epoch, base_sequence, fields["record_count"]) + record_bytes
    crc = crc32c(tail) if crc_override is None else crc_override
    return struct.pack("<qIBI", fields["base_offset"], fields["batch_length"], fields["magic"],
                       crc) + tail


def set_batch_sequence(batch: bytes, base_sequence: int) -> bytes:
    """Rewrites baseSequence and the CRC (what a producer does when renumbering, §8.1)."""
    b = bytearray(batch)
    struct.pack_into("<i", b, 49, base_sequence)
    struct.pack_into("<I", b, 13, crc32c(bytes(b[17:])))
    return bytes(b)


COMPACTED_ATTRIBUTE = 1 << 3  # a batch the broker's log cleaner rewrote (§5.2)


def _parse_records(data: bytes, batch_offset: int, first_timestamp: int, compacted: bool,
                   last_offset_delta: int) -> List[Record]:
    records = []
    pos = 0
    index = 0
    previous_delta = -1
    while pos < len(data):
        length, pos = decode_varint(data, pos)
        end = pos + length
        if length > 0x7FFFFFFF or end > len(data):
            raise ValueError("record %d: length %d runs past the batch" % (index, length))
        rec = memoryview(data)[:end]
        pos += 1  # attributes, ignored
        ts_delta, pos = decode_zigzag(rec, pos)
        offset_delta, pos = decode_zigzag(rec, pos)
        dense = offset_delta == index
        increasing = previous_delta < offset_delta <= last_offset_delta
        if not (increasing if compacted else dense):
            raise ValueError("record %d has offsetDelta %d" % (index, offset_delta))
        previous_delta = offset_delta
        key_len, pos = decode_zigzag(rec, pos)
        if key_len < -1 or pos + max(key_len, 0) > end:
            raise ValueError("record %d: bad key length %d" % (index, key_len))
        key = None if key_len == -1 else bytes(rec[pos:pos + key_len])
        pos += max(key_len, 0)
        value_len, pos = decode_zigzag(rec, pos)
        if value_len < 0 or pos + value_len > end:
            raise ValueError("record %d: bad value length %d" % (index, value_len))
        value = bytes(rec[pos:pos + value_len])
        pos += value_len
        header_count, pos = decode_varint(rec, pos)
        headers = []
        for _ in range(header_count):
            name_len, pos = decode_zigzag(rec, pos)
            if name_len < 0 or pos + name_len > end:
                raise ValueError("record %d: bad header name length" % index)
            name = bytes(rec[pos:pos + name_len]).decode("utf-8")
            pos += name_len
            hv_len, pos = decode_zigzag(rec, pos)
            if hv_len < 0 or pos + hv_len > end:
                raise ValueError("record %d: bad header value length" % index)
            headers.append((name, bytes(rec[pos:pos + hv_len])))
            pos += hv_len
        if pos != end:
            raise ValueError("record %d uses %d bytes, its length says %d"
                             % (index, pos - (end - length), length))
        records.append(Record(value, key, headers, first_timestamp + ts_delta,
                              batch_offset + offset_delta))
        index += 1
    return records


def parse_batch(data: bytes) -> Batch:
    """Parses and verifies one whole batch (length, magic, CRC, records, header consistency)."""
    if len(data) < BATCH_HEADER_SIZE:
        raise ValueError("batch shorter than its 57-byte header")
    (base_offset, batch_length, magic, crc, attributes, last_offset_delta, first_ts, max_ts,
     producer_id, producer_epoch, base_sequence, record_count) = _BATCH_HEADER.unpack_from(data)
    if magic != BATCH_MAGIC:
        raise ValueError("batch magic %d" % magic)
    if batch_length < 45 or 12 + batch_length != len(data):
        raise ValueError("batchLength %d for %d bytes" % (batch_length, len(data)))
    actual = crc32c(data[17:])
    if actual != crc:
        raise ValueError("CRC 0x%08x, computed 0x%08x" % (crc, actual))
    if attributes not in (0, COMPACTED_ATTRIBUTE):
        raise ValueError("attributes %d" % attributes)
    compacted = attributes == COMPACTED_ATTRIBUTE
    records = _parse_records(data[BATCH_HEADER_SIZE:], base_offset, first_ts, compacted,
                             last_offset_delta)
    if len(records) != record_count or not (compacted or last_offset_delta == record_count - 1):
        raise ValueError("recordCount %d / lastOffsetDelta %d for %d records"
                         % (record_count, last_offset_delta, len(records)))
    if not compacted and (records[0].timestamp != first_ts
                          or max(r.timestamp for r in records) != max_ts):
        raise ValueError("batch timestamps disagree with its records")
    return Batch(base_offset, batch_length, magic, crc, attributes, last_offset_delta, first_ts,
                 max_ts, producer_id, producer_epoch, base_sequence, record_count, records,
                 bytes(data))


def parse_batches(data: bytes) -> List[Batch]:
    """Splits a fetch reply's records frame into verified batches (§4.3, §5.5)."""
    batches = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 12:
            raise ValueError("partial batch at the end of the records frame")
        (batch_length,) = struct.unpack_from("<I", data, pos + 8)
        end = pos + 12 + batch_length
        if end > len(data):
            raise ValueError("partial batch at the end of the records frame")
        batches.append(parse_batch(data[pos:end]))
        pos = end
    return batches


# --------------------------------------------------------------------------------------------
# Frame header (§3)

_HEADER = struct.Struct("<BBBBHHQ")
assert _HEADER.size == HEADER_SIZE


@dataclass
class FrameHeader:
    op_code: int
    correlation_id: int
    flags: int = 0
    error_code: int = 0
    version: int = PROTOCOL_VERSION
    magic: int = HEADER_MAGIC
    reserved: int = 0

    def encode(self) -> bytes:
        return _HEADER.pack(self.magic, self.version, self.op_code, self.flags, self.error_code,
                            self.reserved, self.correlation_id)

    @classmethod
    def decode(cls, data: bytes) -> "FrameHeader":
        if len(data) != HEADER_SIZE:
            raise ProtocolViolation("header frame of %d bytes" % len(data))
        magic, version, op, flags, error, reserved, corr = _HEADER.unpack(data)
        if magic != HEADER_MAGIC:
            raise ProtocolViolation("header magic 0x%02x" % magic)
        return cls(op, corr, flags, error, version, magic, reserved)

    @property
    def is_reply(self) -> bool:
        return bool(self.flags & FLAG_REPLY)


# --------------------------------------------------------------------------------------------
# Body encoding (§2)

class BodyWriter:
    def __init__(self):
        self.buf = bytearray()

    def u8(self, v):  self.buf += struct.pack("<B", v); return self
    def u16(self, v): self.buf += struct.pack("<H", v); return self
    def u32(self, v): self.buf += struct.pack("<I", v); return self
    def u64(self, v): self.buf += struct.pack("<Q", v); return self
    def i16(self, v): self.buf += struct.pack("<h", v); return self
    def i32(self, v): self.buf += struct.pack("<i", v); return self
    def i64(self, v): self.buf += struct.pack("<q", v); return self

    def bool(self, v):
        return self.u8(1 if v else 0)

    def blob(self, v):
        """A `bytes` field (§2): u32 length, then the bytes."""
        self.u32(len(v))
        self.buf += bytes(v)
        return self

    def string(self, s):
        raw = s.encode("utf-8") if isinstance(s, str) else bytes(s)
        if len(raw) > 0xFFFF:
            raise ValueError("string over 65,535 bytes")
        self.u16(len(raw))
        self.buf += raw
        return self

    def array(self, items, write_item):
        self.u32(len(items))
        for item in items:
            write_item(self, item)
        return self

    def settings(self, entries, sort=True):
        """A map (§2.1). ``entries`` is a dict or a list of pairs; ``sort=False`` keeps the
        given order (for tests of the broker's check)."""
        pairs = list(entries.items()) if isinstance(entries, dict) else list(entries)
        if sort:
            pairs.sort(key=lambda kv: kv[0].encode("utf-8"))
        return self.array(pairs, lambda w, kv: w.string(kv[0]).string(kv[1]))

    def topic_partition(self, tp):
        return self.string(tp[0]).i32(tp[1])

    def bytes(self) -> bytes:
        return bytes(self.buf)


class BodyReader:
    """Reads a body field by field; ``end()`` requires it used up (§2.2)."""

    def __init__(self, data: bytes):
        self.data = bytes(data)
        self.pos = 0

    def _take(self, n):
        if self.pos + n > len(self.data):
            raise ProtocolViolation("body too short")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def _unpack(self, fmt, n):
        return struct.unpack(fmt, self._take(n))[0]

    def u8(self):  return self._unpack("<B", 1)
    def u16(self): return self._unpack("<H", 2)
    def u32(self): return self._unpack("<I", 4)
    def u64(self): return self._unpack("<Q", 8)
    def i16(self): return self._unpack("<h", 2)
    def i32(self): return self._unpack("<i", 4)
    def i64(self): return self._unpack("<q", 8)

    def string(self) -> str:
        n = self.u16()
        try:
            return self._take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation("string is not UTF-8")

    def array(self, read_item, min_size):
        count = self.u32()
        if count > 100_000 or count * min_size > len(self.data) - self.pos:
            raise ProtocolViolation("array count %d cannot fit" % count)
        return [read_item(self) for _ in range(count)]

    def settings(self) -> Dict[str, str]:
        pairs = self.array(lambda r: (r.string(), r.string()), 4)
        keys = [k.encode("utf-8") for k, _ in pairs]
        if any(a >= b for a, b in zip(keys, keys[1:])):
            raise ProtocolViolation("settings keys not strictly ascending")
        return dict(pairs)

    def topic_partition(self):
        return (self.string(), self.i32())

    def end(self):
        if self.pos != len(self.data):
            raise ProtocolViolation("%d trailing bytes" % (len(self.data) - self.pos))


def decode_error_body(data: bytes) -> Tuple[str, Dict[str, int]]:
    r = BodyReader(data)
    message = r.string()
    details = r.array(lambda r: (r.string(), r.i64()), 10)
    r.end()
    return message, dict(details)


# Shared structures (§2.4)

@dataclass
class CommittedOffset:
    topic: str
    partition: int
    offset: int
    metadata: str = ""


@dataclass
class GroupAssignment:
    member_id: str
    generation: int
    heartbeat_interval_ms: int
    partitions: List[Tuple[str, int]]


def _write_committed(w: BodyWriter, c: CommittedOffset):
    w.string(c.topic).i32(c.partition).i64(c.offset).string(c.metadata)


def _read_committed(r: BodyReader) -> CommittedOffset:
    return CommittedOffset(r.string(), r.i32(), r.i64(), r.string())


def _read_assignment(r: BodyReader) -> GroupAssignment:
    return GroupAssignment(r.string(), r.i32(), r.u32(),
                           r.array(lambda r: r.topic_partition(), 6))


# Request bodies (§4)

def produce_body(topic: str, partition: int, condition: Optional[Tuple[bytes, int]] = None) -> bytes:
    """A produce body; `condition` (key, lastOffset) makes it a conditional append (§4.2)."""
    w = BodyWriter().string(topic).i32(partition)
    if condition is not None:
        w.u8(1).blob(condition[0]).i64(condition[1])
    return w.bytes()


def fetch_key_body(topic, partition, key: bytes, offset, max_bytes=1 << 20) -> bytes:
    return BodyWriter().string(topic).i32(partition).blob(key).i64(offset).u32(max_bytes).bytes()


def fetch_body(topic, partition, offset, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20) -> bytes:
    return (BodyWriter().string(topic).i32(partition).i64(offset).u32(max_wait_ms)
            .u32(min_bytes).u32(max_bytes).bytes())


def list_offsets_body(topic, partition, spec) -> bytes:
    return BodyWriter().string(topic).i32(partition).i64(spec).bytes()


def metadata_body(topics: Sequence[str], allow_auto_creation: bool) -> bytes:
    return (BodyWriter().array(list(topics), lambda w, t: w.string(t))
            .bool(allow_auto_creation).bytes())


def create_topic_body(name, partitions, settings=None, sort=True) -> bytes:
    return (BodyWriter().string(name).i32(partitions).settings(settings or {}, sort=sort)
            .bytes())


def join_group_body(group, member_id, session_timeout_ms, topics, owned=()) -> bytes:
    return (BodyWriter().string(group).string(member_id).u32(session_timeout_ms)
            .array(list(topics), lambda w, t: w.string(t))
            .array(list(owned), BodyWriter.topic_partition).bytes())


def heartbeat_body(group, member_id, generation, owned) -> bytes:
    return (BodyWriter().string(group).string(member_id).i32(generation)
            .array(list(owned), BodyWriter.topic_partition).bytes())


def leave_group_body(group, member_id) -> bytes:
    return BodyWriter().string(group).string(member_id).bytes()


def commit_offsets_body(group, member_id, generation, offsets) -> bytes:
    return (BodyWriter().string(group).string(member_id).i32(generation)
            .array(list(offsets), _write_committed).bytes())


def fetch_offsets_body(group, partitions) -> bytes:
    return (BodyWriter().string(group).array(list(partitions), BodyWriter.topic_partition)
            .bytes())


def name_body(name) -> bytes:
    return BodyWriter().string(name).bytes()


# Reply bodies (§4)

@dataclass
class ProduceResult:
    partition: int
    base_offset: int
    durability: int

    @property
    def durability_name(self):
        return DURABILITY_NAMES.get(self.durability, "unknown(%d)" % self.durability)


@dataclass
class FetchResult:
    partition: int
    log_start_offset: int
    log_end_offset: int
    records_frame: bytes
    batches: List[Batch]

    def records(self, from_offset: int = 0) -> List[Record]:
        """Records at or after ``from_offset`` (a fetch may start inside a batch, §5.5)."""
        return [r for b in self.batches for r in b.records if r.offset >= from_offset]


@dataclass
class PartitionInfo:
    partition: int
    log_start_offset: int
    log_end_offset: int


@dataclass
class TopicMetadata:
    name: str
    error_code: int
    partitions: List[PartitionInfo]


@dataclass
class Metadata:
    broker_version: str
    topics: List[TopicMetadata]


@dataclass
class TopicPartitionDescription:
    partition: int
    log_start_offset: int
    log_end_offset: int
    size_bytes: int
    segment_count: int
    write_error: str


@dataclass
class TopicDescription:
    name: str
    settings: Dict[str, str]
    topic_settings: Dict[str, str]
    partitions: List[TopicPartitionDescription]


@dataclass
class GroupSummary:
    name: str
    state: int
    member_count: int


@dataclass
class GroupDescription:
    group: str
    state: int
    generation: int
    members: List[Tuple[str, List[Tuple[str, int]]]]
    partitions: List[Tuple[str, int, int, int, int]]  # topic, partition, committed, logEnd, lag


def _decode(data: bytes, read):
    r = BodyReader(data)
    out = read(r)
    r.end()
    return out


# --------------------------------------------------------------------------------------------
# The connection (§1)

@dataclass
class Reply:
    header: FrameHeader
    frames: List[bytes]


class SpoolClient:
    """One DEALER connection. Requests may overlap: ``send`` returns the correlation id and
    ``receive`` waits for that id's reply; ``request`` does both."""

    def __init__(self, endpoint: str, timeout: float = 30.0, context: Optional[zmq.Context] = None):
        self.endpoint = endpoint
        self.timeout = timeout
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self._ids = itertools.count(1)
        self._outstanding: Dict[int, int] = {}   # correlation id -> op code
        self._arrived: Dict[int, Reply] = {}

    def close(self):
        self.socket.close(0)
        if self._own_context:
            self.context.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- raw traffic -------------------------------------------------------------------------

    def send_frames(self, frames: Sequence[bytes], correlation_id: int, op_code: int) -> int:
        """Sends frames as they are (the first should be a header with ``correlation_id``)."""
        self._outstanding[correlation_id] = op_code
        self.socket.send_multipart([bytes(f) for f in frames])
        return correlation_id

    def next_id(self) -> int:
        return next(self._ids)

    def send(self, op_code: int, body: bytes, extra: Sequence[bytes] = ()) -> int:
        corr = self.next_id()
        header = FrameHeader(op_code, corr).encode()
        return self.send_frames([header, body, *extra], corr, op_code)

    def receive_raw(self, correlation_id: int, timeout: Optional[float] = None,
                    give_up: bool = True) -> Reply:
        """Waits for the reply to ``correlation_id``; other replies are kept for their own
        ``receive`` and replies to nothing outstanding are ignored (§1.2). On a timeout the
        request is forgotten (a late reply is ignored) unless ``give_up`` is False."""
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while correlation_id not in self._arrived:
            left = deadline - time.monotonic()
            if left <= 0:
                if give_up:
                    self._outstanding.pop(correlation_id, None)
                raise Timeout("no reply to request %d within %.1f s" % (correlation_id, wait))
            if not self.socket.poll(int(left * 1000) + 1):
                continue
            frames = self.socket.recv_multipart()
            header = FrameHeader.decode(frames[0])
            if header.correlation_id not in self._outstanding:
                continue
            op = self._outstanding.pop(header.correlation_id)
            if not header.is_reply:
                raise ProtocolViolation("reply without the reply flag")
            if header.op_code != op:
                raise ProtocolViolation("reply op code %d to a request with %d"
                                        % (header.op_code, op))
            if header.version != PROTOCOL_VERSION:
                raise ProtocolViolation("reply version %d" % header.version)
            self._arrived[header.correlation_id] = Reply(header, frames[1:])
        return self._arrived.pop(correlation_id)

    def receive(self, correlation_id: int, timeout: Optional[float] = None,
                give_up: bool = True) -> Reply:
        """Like ``receive_raw``, and raises ``SpoolError`` for an error reply."""
        reply = self.receive_raw(correlation_id, timeout, give_up)
        if reply.header.error_code != 0:
            if len(reply.frames) != 1:
                raise ProtocolViolation("error reply with %d frames after the header"
                                        % len(reply.frames))
            message, details = decode_error_body(reply.frames[0])
            raise SpoolError(reply.header.error_code, message, details, reply.header.op_code)
        expected = 2 if reply.header.op_code in (OP_FETCH, OP_FETCH_KEY) else 1
        if len(reply.frames) != expected:
            raise ProtocolViolation("reply with %d frames after the header, expected %d"
                                    % (len(reply.frames), expected))
        return reply

    def request(self, op_code: int, body: bytes, extra: Sequence[bytes] = (),
                timeout: Optional[float] = None) -> Reply:
        return self.receive(self.send(op_code, body, extra), timeout)

    # -- operations --------------------------------------------------------------------------

    def produce_batch(self, topic: str, partition: int, batch: bytes,
                      condition: Optional[Tuple[bytes, int]] = None) -> ProduceResult:
        reply = self.request(OP_PRODUCE, produce_body(topic, partition, condition), [batch])
        return _decode(reply.frames[0], lambda r: ProduceResult(r.i32(), r.i64(), r.u8()))

    def produce(self, topic: str, partition: int, records: Sequence[Record], **batch_fields):
        return self.produce_batch(topic, partition, build_batch(records, **batch_fields))

    def send_fetch(self, topic, partition, offset, max_wait_ms=0, min_bytes=1,
                   max_bytes=1 << 20) -> int:
        return self.send(OP_FETCH, fetch_body(topic, partition, offset, max_wait_ms, min_bytes,
                                              max_bytes))

    def receive_fetch(self, correlation_id: int, timeout: Optional[float] = None,
                      give_up: bool = True) -> FetchResult:
        reply = self.receive(correlation_id, timeout, give_up)
        partition, start, end = _decode(reply.frames[0], lambda r: (r.i32(), r.i64(), r.i64()))
        try:
            batches = parse_batches(reply.frames[1])
        except ValueError as e:
            raise ProtocolViolation("records frame: %s" % e)
        return FetchResult(partition, start, end, reply.frames[1], batches)

    def fetch(self, topic, partition, offset, max_wait_ms=0, min_bytes=1,
              max_bytes=1 << 20) -> FetchResult:
        corr = self.send_fetch(topic, partition, offset, max_wait_ms, min_bytes, max_bytes)
        return self.receive_fetch(corr, self.timeout + max_wait_ms / 1000)

    def fetch_key(self, topic, partition, key: bytes, offset, max_bytes=1 << 20):
        """One fetchKey (§4.17): (nextOffset, lastOffset, the key's records at or after offset)."""
        reply = self.request(OP_FETCH_KEY, fetch_key_body(topic, partition, key, offset, max_bytes))
        _, _, _, next_offset, last_offset = _decode(
            reply.frames[0], lambda r: (r.i32(), r.i64(), r.i64(), r.i64(), r.i64()))
        try:
            batches = parse_batches(reply.frames[1])
        except ValueError as e:
            raise ProtocolViolation("records frame: %s" % e)
        records = [x for b in batches for x in b.records if x.key == key and x.offset >= offset]
        return next_offset, last_offset, records

    def list_offsets(self, topic, partition, spec) -> int:
        reply = self.request(OP_LIST_OFFSETS, list_offsets_body(topic, partition, spec))
        partition_, offset = _decode(reply.frames[0], lambda r: (r.i32(), r.i64()))
        return offset

    def metadata(self, topics: Sequence[str] = (), allow_auto_creation: bool = False) -> Metadata:
        reply = self.request(OP_METADATA, metadata_body(topics, allow_auto_creation))

        def read(r):
            version = r.string()
            topics_ = r.array(lambda r: TopicMetadata(
                r.string(), r.u16(),
                r.array(lambda r: PartitionInfo(r.i32(), r.i64(), r.i64()), 20)), 8)
            return Metadata(version, topics_)
        return _decode(reply.frames[0], read)

    def create_topic(self, name, partitions=1, settings=None) -> Tuple[str, int]:
        reply = self.request(OP_CREATE_TOPIC, create_topic_body(name, partitions, settings))
        return _decode(reply.frames[0], lambda r: (r.string(), r.i32()))

    def init_producer_id(self) -> Tuple[int, int]:
        reply = self.request(OP_INIT_PRODUCER_ID, b"")
        return _decode(reply.frames[0], lambda r: (r.i64(), r.i16()))

    def join_group(self, group, topics, member_id="", session_timeout_ms=10_000,
                   owned=()) -> GroupAssignment:
        reply = self.request(OP_JOIN_GROUP, join_group_body(group, member_id, session_timeout_ms,
                                                            topics, owned))
        return _decode(reply.frames[0], _read_assignment)

    def heartbeat(self, group, member_id, generation, owned) -> GroupAssignment:
        reply = self.request(OP_HEARTBEAT, heartbeat_body(group, member_id, generation, owned))
        return _decode(reply.frames[0], _read_assignment)

    def leave_group(self, group, member_id) -> None:
        reply = self.request(OP_LEAVE_GROUP, leave_group_body(group, member_id))
        _decode(reply.frames[0], lambda r: None)

    def commit_offsets(self, group, member_id, generation, offsets) -> None:
        reply = self.request(OP_COMMIT_OFFSETS,
                             commit_offsets_body(group, member_id, generation, offsets))
        _decode(reply.frames[0], lambda r: None)

    def fetch_offsets(self, group, partitions=()) -> List[CommittedOffset]:
        reply = self.request(OP_FETCH_OFFSETS, fetch_offsets_body(group, partitions))
        return _decode(reply.frames[0], lambda r: r.array(_read_committed, 16))

    def list_groups(self) -> List[GroupSummary]:
        reply = self.request(OP_LIST_GROUPS, b"")
        return _decode(reply.frames[0], lambda r: r.array(
            lambda r: GroupSummary(r.string(), r.u8(), r.u32()), 7))

    def describe_group(self, group) -> GroupDescription:
        reply = self.request(OP_DESCRIBE_GROUP, name_body(group))

        def read(r):
            return GroupDescription(
                r.string(), r.u8(), r.i32(),
                r.array(lambda r: (r.string(), r.array(lambda r: r.topic_partition(), 6)), 6),
                r.array(lambda r: (r.string(), r.i32(), r.i64(), r.i64(), r.i64()), 30))
        return _decode(reply.frames[0], read)

    def describe_topic(self, name) -> TopicDescription:
        reply = self.request(OP_DESCRIBE_TOPIC, name_body(name))

        def read(r):
            return TopicDescription(
                r.string(), r.settings(), r.settings(),
                r.array(lambda r: TopicPartitionDescription(
                    r.i32(), r.i64(), r.i64(), r.i64(), r.i32(), r.string()), 34))
        return _decode(reply.frames[0], read)

    def delete_topic(self, name) -> Tuple[str, int]:
        reply = self.request(OP_DELETE_TOPIC, name_body(name))
        return _decode(reply.frames[0], lambda r: (r.string(), r.i32()))
