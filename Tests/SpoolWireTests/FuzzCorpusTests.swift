// Fuzz targets of the wire decoders (`frame-header`, `messages`, `record-batch`) and the tests
// that replay their committed corpus.
//
// This file is compiled twice. In SpoolWireTests it is a test file: the suite at the bottom
// replays every file of `Fuzz/Corpus/<target>/` through the targets and runs a short seeded
// mutation loop. Through a symlink it is also a source file of the libFuzzer executable in
// `Fuzz/` (see `scripts/fuzz.sh`), which defines `SPOOL_FUZZ` and so leaves the tests out.
// The targets in between are the same code in both builds.
//
// A target takes one input and throws when an invariant breaks; the libFuzzer executable turns
// that into a trap, so the input is saved as a crash. Decoders must never trap on their own.

import SpoolWire
#if !SPOOL_FUZZ
import Foundation
import SpoolTesting
import Testing
#endif

/// The fuzz targets of SpoolWire, by the names the corpus folders and `scripts/fuzz.sh` use.
enum WireFuzzTargets {
    static let all: [(name: String, run: @Sendable (UnsafeRawBufferPointer) throws -> Void)] = [
        ("frame-header", frameHeader),
        ("messages", messages),
        ("record-batch", recordBatch),
    ]

    // MARK: frame-header

    /// Any bytes as a header frame: exactly 16 bytes starting with the magic decode, to a header
    /// whose encoding is the input with the flag bits other than "reply" and the reserved field
    /// cleared; everything else is a `malformedRequest`.
    static func frameHeader(_ data: UnsafeRawBufferPointer) throws {
        let header: FrameHeader
        do throws(WireError) {
            header = try FrameHeader.decode(data)
        } catch {
            try require(data.count != FrameHeader.size || data[0] != FrameHeader.magic, "a 16-byte frame with the magic failed: \(error)")
            try require(error.code == .malformedRequest && !error.message.isEmpty, "unexpected error \(error)")
            return
        }
        try require(data.count == FrameHeader.size && data[0] == FrameHeader.magic, "decoded a frame of \(data.count) bytes")
        var normalised = Array(data)
        normalised[3] &= 1
        normalised[6] = 0
        normalised[7] = 0
        let encoded = header.encoded()
        try require(encoded == normalised, "re-encoded \(hex(encoded)), expected \(hex(normalised))")
        let again = try decodeExactly(encoded) { bytes throws(WireError) in try FrameHeader.decode(bytes) }
        try require(again == header, "re-decoded \(again), first decode gave \(header)")
    }

    // MARK: messages

    /// A body decoder and its checks, under the type's name.
    struct MessageType: Sendable {
        let name: String
        let check: @Sendable (UnsafeRawBufferPointer) throws -> Void
    }

    /// Every request and reply body, and the error body; the first input byte of the `messages`
    /// target picks one (modulo the count). Append new types at the end: the corpus files start
    /// with their type's index.
    static let messageTypes: [MessageType] = [
        message(ProduceRequest.self), message(ProduceResponse.self),
        message(FetchRequest.self), message(FetchResponse.self),
        message(ListOffsetsRequest.self, extraErrors: [.invalidRequest]), message(ListOffsetsResponse.self),
        message(MetadataRequest.self), message(MetadataResponse.self),
        message(CreateTopicRequest.self), message(CreateTopicResponse.self),
        message(InitProducerIDRequest.self), message(InitProducerIDResponse.self),
        message(JoinGroupRequest.self), message(JoinGroupResponse.self),
        message(HeartbeatRequest.self), message(HeartbeatResponse.self),
        message(LeaveGroupRequest.self), message(LeaveGroupResponse.self),
        message(CommitOffsetsRequest.self), message(CommitOffsetsResponse.self),
        message(FetchOffsetsRequest.self), message(FetchOffsetsResponse.self),
        message(ListGroupsRequest.self), message(ListGroupsResponse.self),
        message(DescribeGroupRequest.self), message(DescribeGroupResponse.self),
        MessageType(name: "ErrorResponse", check: errorResponse),
        message(DescribeTopicRequest.self), message(DescribeTopicResponse.self),
        message(DeleteTopicRequest.self), message(DeleteTopicResponse.self),
        message(FetchKeyRequest.self), message(FetchKeyResponse.self),
    ]

    /// First byte: the message type (``messageTypes``, modulo its count); the rest: the body.
    static func messages(_ data: UnsafeRawBufferPointer) throws {
        guard let selector = data.first else { return }
        let type = messageTypes[Int(selector) % messageTypes.count]
        try type.check(UnsafeRawBufferPointer(rebasing: data[1...]))
    }

    /// A body of `M`: it decodes, or throws `malformedRequest` (or one of `extraErrors`) with a
    /// message. A decoded body re-encodes to exactly the input (every field is kept as sent),
    /// and that decodes to an equal value.
    private static func message<M: WireMessage & Hashable>(_: M.Type, extraErrors: Set<ErrorCode> = []) -> MessageType {
        let allowed = extraErrors.union([.malformedRequest])
        return MessageType(name: "\(M.self)") { bytes in
            let decoded: M
            do throws(WireError) {
                decoded = try M.decode(bytes)
            } catch {
                try require(allowed.contains(error.code) && !error.message.isEmpty, "\(M.self): unexpected error \(error)")
                return
            }
            let encoded = decoded.encoded()
            try require(encoded.elementsEqual(bytes), "\(M.self): decoded \(hex(Array(bytes))) but re-encoded \(hex(encoded))")
            let again = try decodeExactly(encoded) { bytes throws(WireError) in try M.decode(bytes) }
            try require(again == decoded, "\(M.self): re-decoded \(again), first decode gave \(decoded)")
        }
    }

    /// An error body. The encoder normalises (details sorted and deduplicated, the message cut
    /// to 1024 bytes on a scalar boundary), so the check is that the re-encoding decodes to the
    /// same details and a prefix of the message, and that a second round trip changes nothing.
    private static func errorResponse(_ bytes: UnsafeRawBufferPointer) throws {
        let decoded: ErrorResponse
        do throws(WireError) {
            decoded = try ErrorResponse.decode(bytes)
        } catch {
            try require(error.code == .malformedRequest && !error.message.isEmpty, "ErrorResponse: unexpected error \(error)")
            return
        }
        let encoded = decoded.encoded()
        let again = try decodeExactly(encoded) { bytes throws(WireError) in try ErrorResponse.decode(bytes) }
        try require(again.details == decoded.details, "ErrorResponse: details \(decoded.details) became \(again.details)")
        if decoded.message.utf8.count <= 1024 {
            try require(again.message.utf8.elementsEqual(decoded.message.utf8), "ErrorResponse: message changed in a round trip")
        } else {
            try require(again.message.utf8.count <= 1024 && again.message.utf8.count > 1024 - 4
                        && decoded.message.utf8.starts(with: again.message.utf8),
                        "ErrorResponse: a long message was not cut to a prefix of 1021...1024 bytes")
        }
        try require(again.encoded() == encoded, "ErrorResponse: a second round trip changed the bytes")
    }

    // MARK: record-batch

    /// Any bytes as one batch. The read path (compacted batches allowed): an accepted batch
    /// decodes to exactly `recordCount` records at strictly increasing offsets within its range.
    /// The produce path (timestamps checked, compacted refused): `validate` either throws a
    /// batch error or accepts, and then `records(in:)` must decode exactly `recordCount` records with dense
    /// offsets; re-building them with `RecordBatchBuilder` gives a batch that validates and
    /// decodes to the same records; a record limit of 0 bytes refuses it. `records(in:)` must not
    /// trap on bytes `validate` refused either.
    static func recordBatch(_ data: UnsafeRawBufferPointer) throws {
        if let stored = try? RecordBatch.validate(data) {
            let records = try RecordBatch.records(in: data)
            try require(records.count == Int(stored.recordCount), "\(records.count) records decoded, the header says \(stored.recordCount)")
            let offsets = records.map(\.offset)
            try require(zip(offsets, offsets.dropFirst()).allSatisfy { $0 < $1 } && offsets.allSatisfy { (stored.baseOffset...stored.lastOffset).contains($0) },
                        "offsets \(offsets) outside \(stored.baseOffset)...\(stored.lastOffset) or not increasing")
        }
        let header: RecordBatch.Header
        do throws(WireError) {
            header = try RecordBatch.validate(data, checkingTimestamps: true, allowingCompacted: false)
        } catch {
            try require([.corruptBatch, .inconsistentBatch, .unsupportedVersion].contains(error.code) && !error.message.isEmpty,
                        "validate: unexpected error \(error)")
            _ = try? RecordBatch.records(in: data)
            return
        }
        try require(header.totalSize == data.count, "validate accepted \(data.count) bytes for a batch of \(header.totalSize)")
        let records: [Record]
        do {
            records = try RecordBatch.records(in: data)
        } catch {
            throw Failure("validate accepted a batch whose records do not decode: \(error)")
        }
        try require(records.count == Int(header.recordCount), "\(records.count) records decoded, the header says \(header.recordCount)")
        for (index, record) in records.enumerated() {
            try require(record.offset == header.baseOffset &+ Int64(index), "record \(index) has offset \(record.offset)")
        }

        var builder = RecordBatchBuilder()
        builder.producerID = header.producerID
        builder.producerEpoch = header.producerEpoch
        builder.baseSequence = header.baseSequence
        for record in records { builder.append(record) }
        var rebuilt = builder.finish()
        withUnsafeBytes(of: header.baseOffset.littleEndian) { rebuilt.replaceSubrange(0..<8, with: $0) }
        let rebuiltRecords = try decodeExactly(rebuilt) { bytes throws(WireError) in
            try RecordBatch.validate(bytes)
            return try RecordBatch.records(in: bytes)
        }
        try require(rebuiltRecords == records, "the re-built batch decodes to other records")
        let rebuiltHeader = try decodeExactly(rebuilt) { bytes throws(WireError) in try RecordBatch.validate(bytes, checkingTimestamps: true) }
        try require(rebuiltHeader.firstTimestamp == header.firstTimestamp && rebuiltHeader.maxTimestamp == header.maxTimestamp,
                    "an accepted batch's timestamps differ from those the builder writes for its records")

        switch Result(catching: { () throws(WireError) in try RecordBatch.validate(data, maxRecordBytes: 0) }) {
        case .success:
            throw Failure("validate with a 0-byte record limit accepted a batch")
        case .failure(let error):
            try require(error.code == .recordTooLarge, "validate with a 0-byte record limit: \(error)")
        }
    }

    // MARK: Helpers

    /// A broken invariant.
    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    private static func require(_ condition: Bool, _ message: @autoclosure () -> String) throws(Failure) {
        if !condition { throw Failure(message()) }
    }

    /// Runs `decode` on a copy of `bytes` in memory of exactly their size (so the address
    /// sanitizer sees a read past the end); a throw is an invariant failure, since `bytes` came
    /// from an encoder.
    private static func decodeExactly<R>(_ bytes: [UInt8], _ decode: (UnsafeRawBufferPointer) throws(WireError) -> R) throws(Failure) -> R {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
        defer { copy.deallocate() }
        bytes.withUnsafeBytes { copy.copyMemory(from: $0) }
        do {
            return try decode(UnsafeRawBufferPointer(copy))
        } catch {
            throw Failure("an encoding does not decode: \(error); bytes \(hex(bytes))")
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in bytes.prefix(512) { text += [digits[Int(byte >> 4)], digits[Int(byte & 15)]] }
        return String(decoding: text, as: UTF8.self) + (bytes.count > 512 ? "… (\(bytes.count) bytes)" : "")
    }
}

#if !SPOOL_FUZZ

// MARK: - Tests

@Suite struct FuzzCorpusTests {
    @Test(arguments: WireFuzzTargets.all.map(\.name))
    func replaysTheCommittedCorpus(target: String) throws {
        let run = try #require(WireFuzzTargets.all.first { $0.name == target }).run
        let corpus = try FuzzCorpus(target: target)
        #expect(corpus.files.count >= 3, "Fuzz/Corpus/\(target) holds only \(corpus.files.count) files")
        for (name, input) in corpus.files {
            do {
                try FuzzCorpus.withExactBytes(input, run)
            } catch {
                Issue.record("Fuzz/Corpus/\(target)/\(name): \(error)")
            }
        }
    }

    @Test(.timeLimit(.minutes(1)), arguments: WireFuzzTargets.all.map(\.name))
    func survivesSeededMutationsOfTheCorpus(target: String) throws {
        let run = try #require(WireFuzzTargets.all.first { $0.name == target }).run
        let corpus = try FuzzCorpus(target: target)
        var mutator = FuzzMutator(rng: SeededGenerator.logged("survivesSeededMutationsOfTheCorpus(\(target))"),
                                  corpus: corpus.files.map(\.bytes))
        // Half of the record-batch inputs get a fresh checksum, so that mutations reach the records.
        var repair: ((inout [UInt8], inout SeededGenerator) -> Void)?
        if target == "record-batch" { repair = { bytes, rng in fixBatchChecksum(&bytes, &rng) } }
        let count = try mutator.run(for: FuzzMutator.budget, repair: repair) { input in try FuzzCorpus.withExactBytes(input, run) }
        print("fuzz \(target): \(count) mutated inputs in \(FuzzMutator.budget)")
    }

    /// Rewrites the seed files of the wire targets from real encodings (every sample of
    /// MessageSamples, the golden batch and built batches). Run with SPOOL_FUZZ_WRITE_SEEDS=1.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["SPOOL_FUZZ_WRITE_SEEDS"] == "1"))
    func writesTheSeedCorpus() throws {
        var headers: [(String, [UInt8])] = []
        var messages: [(String, [UInt8])] = []
        for (number, sample) in MessageSamples.all.enumerated() {
            if sample.kind == "FrameHeader" {
                headers.append(("seed-\(number)-FrameHeader", sample.encoded))
                continue
            }
            let selector = try #require(WireFuzzTargets.messageTypes.firstIndex { $0.name == sample.kind }, "\(sample.kind)")
            messages.append(("seed-\(number)-\(sample.kind)", [UInt8(selector)] + sample.encoded))
        }
        #expect(Set(messages.map { $0.1[0] }).count == WireFuzzTargets.messageTypes.count, "a message type has no sample")
        try FuzzCorpus.writeSeeds(headers, target: "frame-header")
        try FuzzCorpus.writeSeeds(messages, target: "messages")
        try FuzzCorpus.writeSeeds(Self.seedBatches(), target: "record-batch")
    }

    static func seedBatches() -> [(String, [UInt8])] {
        var batches: [(String, [UInt8])] = [("seed-golden", GoldenBatchTests.goldenBatch)]
        var single = RecordBatchBuilder()
        single.append(timestamp: 1_700_000_000_000, key: nil, value: [])
        batches.append(("seed-one-empty-record", single.finish()))

        var idempotent = RecordBatchBuilder()
        idempotent.producerID = 0x1234_5678_9ABC
        idempotent.producerEpoch = 3
        idempotent.baseSequence = 41
        idempotent.append(timestamp: 5, key: Array("order-1".utf8), value: Array("{\"qty\":2}".utf8))
        idempotent.append(timestamp: 4, key: [], value: [0xFF, 0x00])
        idempotent.append(timestamp: .max, key: nil, value: Array("x".utf8),
                          headers: [RecordHeader(name: "trace-id", string: "abc"), RecordHeader(name: "ключ", value: [])])
        var stamped = idempotent.finish()
        withUnsafeBytes(of: Int64(1_000_000).littleEndian) { stamped.replaceSubrange(0..<8, with: $0) }
        batches.append(("seed-idempotent-stamped", stamped))

        var rng = SeededGenerator(seed: 7)
        var mixed = RecordBatchBuilder()
        for number in 0..<12 {
            let key: [UInt8]? = number % 3 == 0 ? nil : rng.bytes(rng.int(0...8))
            let headers = (0..<(number % 3)).map { RecordHeader(name: ["h", "trace-id", "ключ"][$0], value: rng.bytes(rng.int(0...4))) }
            mixed.append(timestamp: 1_000 + Int64(rng.int(-5...5)), key: key, value: rng.bytes(rng.int(0...40)), headers: headers)
        }
        batches.append(("seed-twelve-mixed-records", mixed.finish()))

        // What the log cleaner writes: a batch keeping records 0 and 2 of three, and an empty one.
        let cleanedHeader = (try? mixed.finish().withUnsafeBytes { try RecordBatch.readHeader($0) })!
        var kept: [UInt8] = []
        try? mixed.finish().withUnsafeBytes { bytes in
            try RecordBatch.forEachRecord(in: bytes) { record in if record.offsetDelta % 5 == 0 { kept += record.bytes } }
        }
        batches.append(("seed-compacted", RecordBatch.compacted(cleanedHeader, recordCount: 3, records: kept)))
        batches.append(("seed-compacted-empty", RecordBatch.compacted(cleanedHeader, recordCount: 0, records: [])))

        var headers = RecordBatchBuilder()
        headers.append(timestamp: .min, key: Array(repeating: 0x41, count: 200), value: Array(repeating: 0x42, count: 300),
                       headers: (0..<5).map { RecordHeader(name: "h\($0)", value: [UInt8($0)]) })
        batches.append(("seed-long-key-value-headers", headers.finish()))

        // The header says the batch ends at 1,000 ms; its second record is at 2,000 (refused as inconsistent).
        var lying = RecordBatchBuilder()
        lying.append(timestamp: 1_000, key: nil, value: [1])
        lying.append(timestamp: 2_000, key: nil, value: [2])
        var bytes = lying.finish()
        withUnsafeBytes(of: Int64(1_000).littleEndian) { bytes.replaceSubrange(31..<39, with: $0) }
        withUnsafeBytes(of: referenceCRC32C(bytes[17...]).littleEndian) { bytes.replaceSubrange(13..<17, with: $0) }
        batches.append(("seed-max-timestamp-too-low", bytes))
        return batches
    }
}

// MARK: Mutations (FuzzCorpus and FuzzMutator live in SpoolTesting)

/// Makes a mutated batch's length field and checksum agree with its bytes, so that mutations
/// reach the records.
private func fixBatchChecksum(_ bytes: inout [UInt8], _ rng: inout SeededGenerator) {
    guard bytes.count >= RecordBatch.headerSize else { return }
    withUnsafeBytes(of: UInt32(bytes.count - RecordBatch.lengthPrefixSize).littleEndian) { bytes.replaceSubrange(8..<12, with: $0) }
    let crc = bytes.withUnsafeBytes { RecordBatch.computeChecksum($0) }
    withUnsafeBytes(of: crc.littleEndian) { bytes.replaceSubrange(13..<17, with: $0) }
}

#endif
