import SpoolTesting
import SpoolWire
import Testing

@Suite struct RecordBatchTests {
    // MARK: Random batches

    @Test(.timeLimit(.minutes(1)))
    func decodesRandomBatchesExactlyAsBuilt() throws {
        var rng = SeededGenerator.logged()
        for _ in 0..<300 {
            let (bytes, expected, first, identity) = randomBatch(using: &rng)
            var stamped = bytes
            let base = Int64.random(in: 0...(Int64.max - 100), using: &rng)
            stamp(base, into: &stamped)
            #expect(stamped[8...] == bytes[8...], "stamping touches only bytes 0..<8")

            let (header, records, checksums) = try stamped.withUnsafeBytes { buffer in
                (try RecordBatch.validate(buffer), try RecordBatch.records(in: buffer), RecordBatch.computeChecksum(buffer))
            }
            #expect(checksums == header.crc, "stamping the base offset must not change the checksum")
            #expect(header.baseOffset == base)
            #expect(header.totalSize == bytes.count)
            #expect(header.recordCount == UInt32(expected.count))
            #expect(header.lastOffset == base + Int64(expected.count) - 1)
            #expect(header.firstTimestamp == first)
            #expect(header.maxTimestamp == expected.map(\.timestamp).max()!)
            #expect(throws: Never.self) { try stamped.withUnsafeBytes { try RecordBatch.validate($0, checkingTimestamps: true) } }
            #expect(header.producerID == identity.id)
            #expect(header.producerEpoch == identity.epoch)
            #expect(header.baseSequence == identity.sequence)
            #expect(records.count == expected.count)
            for (index, (record, want)) in zip(records, expected).enumerated() {
                var want = want
                want.offset = base + Int64(index)
                #expect(record == want, "record \(index)")
            }
        }
    }

    @Test func reportsItsSizeWhileBuilding() {
        var builder = RecordBatchBuilder(capacity: 0)
        #expect(builder.byteCount == RecordBatch.headerSize)
        #expect(builder.count == 0)
        builder.append(Record(offset: 99, timestamp: 5, key: [], value: []))
        // length, attributes, timestampDelta, offsetDelta, keyLength 0, valueLength 0, headerCount
        #expect(builder.byteCount == RecordBatch.headerSize + 7)
        #expect(builder.count == 1)
        var branch = builder
        branch.append(timestamp: 6, key: nil, value: [1])
        #expect(builder.count == 1, "the builder is a value: a copy branches")
        #expect(builder.finish().count == builder.byteCount)
        #expect(branch.finish().count == branch.byteCount)
        let records = try? builder.finish().withUnsafeBytes { buffer in try RecordBatch.records(in: buffer) }
        #expect(records == [Record(offset: 0, timestamp: 5, key: [], value: [])], "an empty key stays distinct from no key")
    }

    // MARK: Corruption

    @Test func rejectsEverySingleByteFlip() throws {
        var rng = SeededGenerator.logged()
        for _ in 0..<20 {
            let (bytes, _, _, _) = randomBatch(using: &rng, maxValue: 60, maxRecords: 4)
            for index in bytes.indices {
                var corrupted = bytes
                corrupted[index] ^= UInt8.random(in: 1...255, using: &rng)
                let error = wireError { () throws(WireError) in
                    try withExactBytes(corrupted) { buffer throws(WireError) in try RecordBatch.validate(buffer) }
                }
                switch index {
                case 0..<8:
                    #expect(error == nil, "the base offset is outside the checksum and stamped by the broker")
                case 12:
                    #expect(error?.code == .unsupportedVersion, "byte \(index): \(String(describing: error))")
                default:
                    #expect(error?.code == .corruptBatch, "byte \(index): \(String(describing: error))")
                }
                // Reading records of a bad batch may succeed or throw, but never trap.
                _ = wireError { () throws(WireError) in
                    try withExactBytes(corrupted) { buffer throws(WireError) in try RecordBatch.records(in: buffer) }
                }
            }
        }
    }

    @Test func enforcesMaxRecordBytes() throws {
        var builder = RecordBatchBuilder()
        let sizes = [10, 1000, 10]
        for size in sizes { builder.append(timestamp: 0, key: nil, value: [UInt8](repeating: 7, count: size)) }
        let bytes = builder.finish()
        // Bytes after each record's length varint: attributes, timestampDelta 0, offsetDelta (< 64: one
        // byte), keyLength -1, valueLength, value, headerCount 0.
        let lengths = sizes.map { 1 + 1 + 1 + 1 + WireWriter.zigZagSize(Int64($0)) + $0 + 1 }
        #expect(lengths == [16, 1007, 16])
        try bytes.withUnsafeBytes { buffer in
            try RecordBatch.validate(buffer, maxRecordBytes: 1007)
            let error = wireError { () throws(WireError) in try RecordBatch.validate(buffer, maxRecordBytes: 1006) }
            #expect(error?.code == .recordTooLarge)
            #expect(error?.message.contains("record 1 is 1007 bytes") == true, "\(String(describing: error))")
            let first = wireError { () throws(WireError) in try RecordBatch.validate(buffer, maxRecordBytes: 0) }
            #expect(first?.code == .recordTooLarge)
            #expect(first?.message.contains("record 0") == true)
        }
    }

    /// Batches whose checksum is right but whose structure is not.
    @Test(arguments: ForgedBatch.cases)
    func rejectsStructurallyBrokenBatches(forged: ForgedBatch) {
        let error = wireError { () throws(WireError) in
            try withExactBytes(forged.bytes) { buffer throws(WireError) in try RecordBatch.validate(buffer) }
        }
        #expect(error?.code == forged.expected, "\(String(describing: error))")
        #expect(error?.message.contains(forged.messagePart) == true, "\(String(describing: error))")
        // records(in:) does not promise to find every structural problem, but must not trap.
        _ = wireError { () throws(WireError) in
            try withExactBytes(forged.bytes) { buffer throws(WireError) in try RecordBatch.records(in: buffer) }
        }
    }

    @Test func acceptsAForgedBatchEqualToABuiltOne() throws {
        // The forging helper itself, checked against the builder, so the broken cases above differ
        // from a valid batch only in what they break.
        var builder = RecordBatchBuilder()
        builder.append(timestamp: 101, key: [1], value: [2, 3], headers: [RecordHeader(name: "n", value: [4])])
        builder.append(timestamp: 99, key: nil, value: [])
        let forged = ForgedBatch.batch(records: [
            ForgedBatch.record(timestampDelta: 0, offsetDelta: 0, key: [1], value: [2, 3], headers: [(Array("n".utf8), [4])]),
            ForgedBatch.record(timestampDelta: -2, offsetDelta: 1, key: nil, value: []),
        ], recordCount: 2, firstTimestamp: 101, maxTimestamp: 101)
        #expect(hexString(forged) == hexString(builder.finish()))
    }

    /// A header whose timestamps disagree with its records (a lookup by time would skip records)
    /// is refused where a broker checks a produced batch, naming the field; a reader of a stored
    /// log, whose older batches may differ there, still reads it.
    @Test(arguments: [
        (deltas: [Int64(1), -1], first: Int64(100), max: Int64(101), field: RecordBatch.CheckedField.firstTimestamp),
        (deltas: [0, 5], first: 100, max: 100, field: .maxTimestamp),
        (deltas: [0, 5], first: 100, max: 200, field: .maxTimestamp),
    ])
    func aHeaderWhoseTimestampsDisagreeIsRefusedNamingTheField(deltas: [Int64], first: Int64, max: Int64, field: RecordBatch.CheckedField) throws {
        let bytes = ForgedBatch.batch(records: deltas.enumerated().map { index, delta in
            ForgedBatch.record(timestampDelta: delta, offsetDelta: Int64(index), key: nil, value: [1])
        }, recordCount: UInt32(deltas.count), firstTimestamp: first, maxTimestamp: max)
        let error = wireError { () throws(WireError) in
            try withExactBytes(bytes) { buffer throws(WireError) in try RecordBatch.validate(buffer, checkingTimestamps: true) }
        }
        #expect(error?.code == .inconsistentBatch)
        #expect(error?.details["field"] == field.rawValue)
        #expect(error?.message.contains(field == .maxTimestamp ? "maxTimestamp \(max)" : "firstTimestamp \(first)") == true, "\(String(describing: error))")
        try withExactBytes(bytes) { buffer throws(WireError) in _ = try RecordBatch.validate(buffer) }
    }

    // MARK: Hostile input

    @Test(.timeLimit(.minutes(1)))
    func survivesRandomBytes() {
        var rng = SeededGenerator.logged()
        var validCount = 0
        for iteration in 0..<6_000 {
            var input = rng.bytes(rng.int(0...300))
            if iteration % 2 == 1, input.count >= RecordBatch.headerSize {
                // Plausible header, random records: gets past the header and checksum checks.
                input[12] = RecordBatch.magic
                overwrite(&input, UInt32(input.count - 12), at: 8)
                overwrite(&input, UInt16(0), at: 17)
                let count = UInt32(rng.int(1...4))
                overwrite(&input, count - 1, at: 19)
                overwrite(&input, count, at: 53)
                fixChecksum(&input)
            }
            if checkHostileBatch(input) { validCount += 1 }
        }
        print("random batches that validated:", validCount)
    }

    @Test(.timeLimit(.minutes(1)))
    func survivesMutatedBatchesWithFixedChecksums() {
        var rng = SeededGenerator.logged()
        var validCount = 0
        for _ in 0..<3_000 {
            var (input, _, _, _) = randomBatch(using: &rng, maxValue: 40, maxRecords: 4)
            for _ in 0..<rng.int(1...3) {
                let at = rng.int(RecordBatch.headerSize...(input.count - 1))
                switch rng.int(0...3) {
                case 0: input[at] ^= UInt8.random(in: 1...255, using: &rng)
                case 1: input.insert(UInt8.random(in: 0...255, using: &rng), at: at)
                case 2: input.remove(at: at)
                default: input[at] = 0xFF
                }
                if input.count <= RecordBatch.headerSize { break }
            }
            overwrite(&input, UInt32(input.count - 12), at: 8)
            fixChecksum(&input)
            if checkHostileBatch(input) { validCount += 1 }
        }
        print("mutated batches that still validated:", validCount)
    }

    /// Runs every batch decoder over `input`: each throws a batch error or succeeds, and a batch
    /// that validates must also decode to `recordCount` records with dense offsets. True if valid.
    private func checkHostileBatch(_ input: [UInt8]) -> Bool {
        let batchCodes: Set<ErrorCode> = [.corruptBatch, .unsupportedVersion]
        return withExactBytesNoThrow(input) { buffer in
            let header = Result { () throws(WireError) in try RecordBatch.readHeader(buffer) }
            let validated = Result { () throws(WireError) in try RecordBatch.validate(buffer) }
            let records = Result { () throws(WireError) in try RecordBatch.records(in: buffer) }
            for case .failure(let error) in [header.map { _ in () }, validated.map { _ in () }, records.map { _ in () }] {
                #expect(batchCodes.contains(error.code), "\(hexString(input)): \(error)")
            }
            if case .success = header { #expect(input.count >= RecordBatch.headerSize) }
            guard case .success(let valid) = validated else { return false }
            #expect((try? header.get()) == valid)
            guard case .success(let decoded) = records else {
                Issue.record("validated but records(in:) failed: \(hexString(input))")
                return true
            }
            #expect(decoded.count == Int(valid.recordCount))
            #expect(decoded.map(\.offset) == (0..<Int64(decoded.count)).map { valid.baseOffset + $0 })
            return true
        }
    }

    @Test func rejectsEveryStrictPrefixAndATrailingByte() throws {
        var rng = SeededGenerator.logged()
        let (bytes, _, _, _) = randomBatch(using: &rng, maxValue: 100, maxRecords: 5)
        for length in 0..<bytes.count {
            withExactBytesNoThrow(Array(bytes.prefix(length))) { buffer in
                let validate = wireError { () throws(WireError) in try RecordBatch.validate(buffer) }
                #expect(validate?.code == .corruptBatch, "prefix \(length): \(String(describing: validate))")
                let records = wireError { () throws(WireError) in try RecordBatch.records(in: buffer) }
                #expect(records?.code == .corruptBatch, "prefix \(length): \(String(describing: records))")
                let header = wireError { () throws(WireError) in try RecordBatch.readHeader(buffer) }
                #expect((header == nil) == (length >= RecordBatch.headerSize), "prefix \(length)")
            }
        }
        withExactBytesNoThrow(bytes + [0]) { buffer in
            let error = wireError { () throws(WireError) in try RecordBatch.validate(buffer) }
            #expect(error?.code == .corruptBatch)
        }
    }

    // MARK: Helpers

    private func stamp(_ base: Int64, into bytes: inout [UInt8]) { overwrite(&bytes, base, at: 0) }

    private func withExactBytesNoThrow<R>(_ array: [UInt8], _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let pointer = UnsafeMutableRawBufferPointer.allocate(byteCount: array.count, alignment: 1)
        defer { pointer.deallocate() }
        array.withUnsafeBytes { pointer.copyMemory(from: $0) }
        return body(UnsafeRawBufferPointer(pointer))
    }
}

/// Overwrites a little-endian integer in `bytes`.
func overwrite<T: FixedWidthInteger>(_ bytes: inout [UInt8], _ value: T, at offset: Int) {
    withUnsafeBytes(of: value.littleEndian) { bytes.replaceSubrange(offset..<(offset + $0.count), with: $0) }
}

/// Recomputes the CRC-32C field (bytes 13..<17) over bytes [17, end), independently of RecordBatch.
func fixChecksum(_ bytes: inout [UInt8]) {
    overwrite(&bytes, referenceCRC32C(bytes[17...]), at: 13)
}

/// A random batch of 1...`maxRecords` records: keys nil, empty or bytes; values empty, small or
/// (rarely) 100 KiB; headers with repeated, empty and unicode names; timestamps before and after the
/// first one, sometimes at the extremes of Int64. Returns the batch, the records (offset 0), the
/// first record's timestamp (the batch's first timestamp) and the idempotence fields.
func randomBatch(using rng: inout SeededGenerator, maxValue: Int = 300, maxRecords: Int = 20)
    -> ([UInt8], [Record], Int64, (id: Int64, epoch: Int16, sequence: Int32)) {
    let first: Int64 = switch rng.int(0...5) {
    case 0: 0
    case 1: .min
    case 2: .max
    case 3: Int64.random(in: .min ... .max, using: &rng)
    default: 1_700_000_000_000 + Int64.random(in: -1_000_000...1_000_000, using: &rng)
    }
    var builder = RecordBatchBuilder(capacity: rng.int(0...2048))
    var identity: (id: Int64, epoch: Int16, sequence: Int32) = (-1, -1, -1)
    if rng.bool() {
        identity = (Int64.random(in: 0 ... .max, using: &rng), Int16.random(in: 0 ... .max, using: &rng),
                    Int32.random(in: 0 ... .max, using: &rng))
        builder.producerID = identity.id
        builder.producerEpoch = identity.epoch
        builder.baseSequence = identity.sequence
    }
    var records: [Record] = []
    let headerNames = ["", "trace", "dup", "dup", "é🚀", "content-type"]
    for _ in 0..<rng.int(1...maxRecords) {
        let timestamp: Int64 = rng.int(0...9) == 0
            ? Int64.random(in: .min ... .max, using: &rng)
            : first &+ Int64.random(in: -100_000...100_000, using: &rng)
        let key: [UInt8]? = switch rng.int(0...2) {
        case 0: nil
        case 1: []
        default: rng.bytes(rng.int(1...32))
        }
        let valueSize = switch rng.int(0...19) {
        case 0: 0
        case 1 where maxValue >= 300: 100 * 1024
        default: rng.int(0...maxValue)
        }
        let headers = (0..<rng.int(0...3)).map { _ in
            RecordHeader(name: headerNames[rng.int(0...headerNames.count - 1)], value: rng.bytes(rng.int(0...20)))
        }
        let record = Record(timestamp: timestamp, key: key, value: rng.bytes(valueSize), headers: headers)
        builder.append(record)
        records.append(record)
    }
    let bytes = builder.finish()
    #expect(builder.byteCount == bytes.count)
    return (bytes, records, records[0].timestamp, identity)
}

/// A batch with a correct checksum that breaks one structural rule, and the error it must cause.
struct ForgedBatch: Sendable, CustomTestStringConvertible {
    let testDescription: String
    let bytes: [UInt8]
    let expected: ErrorCode
    let messagePart: String

    /// One record's bytes, length prefix included unless `length` overrides it.
    static func record(length: UInt64? = nil, timestampDelta: Int64 = 0, offsetDelta: Int64, key: [UInt8]?,
                       keyLength: Int64? = nil, value: [UInt8], valueLength: Int64? = nil,
                       headers: [([UInt8], [UInt8])] = [], headerCount: UInt64? = nil, trailing: [UInt8] = []) -> [UInt8] {
        var body = WireWriter()
        body.write(UInt8(0))
        body.writeZigZag(timestampDelta)
        body.writeZigZag(offsetDelta)
        body.writeZigZag(keyLength ?? key.map { Int64($0.count) } ?? -1)
        if let key { body.writeRaw(key) }
        body.writeZigZag(valueLength ?? Int64(value.count))
        body.writeRaw(value)
        body.writeVarint(headerCount ?? UInt64(headers.count))
        for (name, value) in headers {
            body.writeZigZag(Int64(name.count))
            body.writeRaw(name)
            body.writeZigZag(Int64(value.count))
            body.writeRaw(value)
        }
        body.writeRaw(trailing)
        var out = WireWriter()
        out.writeVarint(length ?? UInt64(body.bytes.count))
        out.writeRaw(body.bytes)
        return out.bytes
    }

    /// A whole batch around `records` with a correct checksum.
    static func batch(records: [[UInt8]], recordCount: UInt32, lastOffsetDelta: UInt32? = nil, attributes: UInt16 = 0,
                      magic: UInt8 = 1, firstTimestamp: Int64 = 0, maxTimestamp: Int64 = 0,
                      batchLength: UInt32? = nil) -> [UInt8] {
        var writer = WireWriter()
        let body = records.flatMap { $0 }
        writer.write(Int64(0))
        writer.write(batchLength ?? UInt32(45 + body.count))
        writer.write(magic)
        writer.write(UInt32(0))
        writer.write(attributes)
        writer.write(lastOffsetDelta ?? recordCount &- 1)
        writer.write(firstTimestamp)
        writer.write(maxTimestamp)
        writer.write(Int64(-1))
        writer.write(Int16(-1))
        writer.write(Int32(-1))
        writer.write(recordCount)
        writer.writeRaw(body)
        var bytes = writer.bytes
        fixChecksum(&bytes)
        return bytes
    }

    static func r(_ offsetDelta: Int64) -> [UInt8] { record(offsetDelta: offsetDelta, key: nil, value: [1, 2]) }

    static let cases: [ForgedBatch] = [
        ForgedBatch(testDescription: "zero records", bytes: batch(records: [], recordCount: 0),
                    expected: .corruptBatch, messagePart: "at least one record"),
        ForgedBatch(testDescription: "count disagrees with last offset delta",
                    bytes: batch(records: [r(0), r(1)], recordCount: 2, lastOffsetDelta: 0),
                    expected: .inconsistentBatch, messagePart: "lastOffsetDelta is 0; 2 records"),
        ForgedBatch(testDescription: "fewer records than counted", bytes: batch(records: [r(0), r(1)], recordCount: 3),
                    expected: .inconsistentBatch, messagePart: "recordCount says 3 records, the batch holds 2"),
        ForgedBatch(testDescription: "more records than counted", bytes: batch(records: [r(0), r(1)], recordCount: 1),
                    expected: .inconsistentBatch, messagePart: "recordCount says 1 records, the batch holds 2"),
        ForgedBatch(testDescription: "4 billion records counted", bytes: batch(records: [r(0)], recordCount: .max),
                    expected: .inconsistentBatch, messagePart: "recordCount says 4294967295"),
        ForgedBatch(testDescription: "compression attribute", bytes: batch(records: [r(0)], recordCount: 1, attributes: 1),
                    expected: .inconsistentBatch, messagePart: "attributes 1"),
        ForgedBatch(testDescription: "magic 2", bytes: batch(records: [r(0)], recordCount: 1, magic: 2),
                    expected: .unsupportedVersion, messagePart: "magic 2"),
        ForgedBatch(testDescription: "batch length shorter than its header",
                    bytes: Array(batch(records: [], recordCount: 1, batchLength: 44)) + [0],
                    expected: .corruptBatch, messagePart: "shorter than its header"),
        ForgedBatch(testDescription: "batch length beyond the frame", bytes: batch(records: [r(0)], recordCount: 1, batchLength: 1000),
                    expected: .corruptBatch, messagePart: "batch length says"),
        ForgedBatch(testDescription: "offset deltas skip", bytes: batch(records: [r(0), r(2)], recordCount: 2),
                    expected: .corruptBatch, messagePart: "non-dense"),
        ForgedBatch(testDescription: "offset deltas repeat", bytes: batch(records: [r(0), r(0)], recordCount: 2),
                    expected: .corruptBatch, messagePart: "non-dense"),
        ForgedBatch(testDescription: "record length beyond the batch",
                    bytes: batch(records: [record(length: 200, offsetDelta: 0, key: nil, value: [1])], recordCount: 1),
                    expected: .corruptBatch, messagePart: "exceeds the batch"),
        ForgedBatch(testDescription: "record length of 2^63",
                    bytes: batch(records: [record(length: 1 << 63, offsetDelta: 0, key: nil, value: [1])], recordCount: 1),
                    expected: .corruptBatch, messagePart: "exceeds the batch"),
        ForgedBatch(testDescription: "11-byte record length varint",
                    bytes: batch(records: [[UInt8](repeating: 0x80, count: 10) + [0x00, 0, 0, 0, 0]], recordCount: 1),
                    expected: .corruptBatch, messagePart: "overflows"),
        ForgedBatch(testDescription: "bytes left inside a record",
                    bytes: batch(records: [record(offsetDelta: 0, key: nil, value: [1], trailing: [9])], recordCount: 1),
                    expected: .corruptBatch, messagePart: "trailing bytes after record 0"),
        ForgedBatch(testDescription: "key length -2",
                    bytes: batch(records: [record(offsetDelta: 0, key: nil, keyLength: -2, value: [1])], recordCount: 1),
                    expected: .corruptBatch, messagePart: "negative or huge length -2"),
        ForgedBatch(testDescription: "key length 2^40",
                    bytes: batch(records: [record(offsetDelta: 0, key: nil, keyLength: 1 << 40, value: [1])], recordCount: 1),
                    expected: .corruptBatch, messagePart: "huge length"),
        ForgedBatch(testDescription: "key longer than the record",
                    bytes: batch(records: [record(offsetDelta: 0, key: nil, keyLength: 50, value: [1])], recordCount: 1),
                    expected: .corruptBatch, messagePart: "exceeds"),
        ForgedBatch(testDescription: "value longer than the record",
                    bytes: batch(records: [record(offsetDelta: 0, key: [1], value: [1], valueLength: 30)], recordCount: 1),
                    expected: .corruptBatch, messagePart: "exceeds"),
        ForgedBatch(testDescription: "header count 2^60",
                    bytes: batch(records: [record(offsetDelta: 0, key: nil, value: [1], headerCount: 1 << 60)], recordCount: 1),
                    expected: .corruptBatch, messagePart: "header count too large"),
        ForgedBatch(testDescription: "more headers counted than present",
                    bytes: batch(records: [record(offsetDelta: 0, key: nil, value: [1], headers: [([0x61], [1])], headerCount: 2)],
                                 recordCount: 1),
                    expected: .corruptBatch, messagePart: "truncated varint"),
        ForgedBatch(testDescription: "header name not UTF-8",
                    bytes: batch(records: [record(offsetDelta: 0, key: nil, value: [1], headers: [([0xC3, 0x28], [1])])],
                                 recordCount: 1),
                    expected: .corruptBatch, messagePart: "not UTF-8"),
    ]
}
