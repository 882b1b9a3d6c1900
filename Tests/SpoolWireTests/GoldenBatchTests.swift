import SpoolTesting
import CSpoolChecksum
import SpoolWire
import Testing

@Suite struct GoldenBatchTests {
    /// Two records: a keyed one with a header at 1005 ms (the batch's first timestamp, and its
    /// largest), and an unkeyed one seven ms before it. Every byte below is derived from the layout comment in RecordBatch.swift.
    static let goldenBatch = hexBytes("""
        00 00 00 00 00 00 00 00   #  0 baseOffset 0 (producers send 0)
        43 00 00 00               #  8 batchLength 67 = 79 total - 12
        01                        # 12 magic 1
        be 09 5a 16               # 13 crc 0x165A09BE, CRC-32C of bytes [17, 79)
        00 00                     # 17 attributes: no compression
        01 00 00 00               # 19 lastOffsetDelta = 2 records - 1
        ed 03 00 00 00 00 00 00   # 23 firstTimestamp 1005 (record 0)
        ed 03 00 00 00 00 00 00   # 31 maxTimestamp 1005
        ff ff ff ff ff ff ff ff   # 39 producerID -1
        ff ff                     # 47 producerEpoch -1
        ff ff ff ff               # 49 baseSequence -1
        02 00 00 00               # 53 recordCount 2
                                  # 57 record 0
        0d                        #    length 13
        00                        #    attributes
        00                        #    timestampDelta 0 (the first record)
        00                        #    offsetDelta 0
        02 6b                     #    keyLength 1 (zig-zag 2), "k"
        04 68 69                  #    valueLength 2 (zig-zag 4), "hi"
        01                        #    headerCount 1 (plain varint)
        02 68                     #    nameLength 1, "h"
        02 01                     #    valueLength 1, 0x01
                                  # 71 record 1
        07                        #    length 7
        00                        #    attributes
        0d                        #    timestampDelta -7, zig-zag 13
        02                        #    offsetDelta 1, zig-zag 2
        01                        #    keyLength -1 (no key), zig-zag 1
        02 78                     #    valueLength 1, "x"
        00                        #    headerCount 0
                                  # 79 end
        """)

    static func buildGoldenBatch() -> [UInt8] {
        var builder = RecordBatchBuilder()
        builder.append(timestamp: 1005, key: Array("k".utf8), value: Array("hi".utf8), headers: [RecordHeader(name: "h", value: [1])])
        builder.append(timestamp: 998, key: nil, value: Array("x".utf8))
        return builder.finish()
    }

    @Test func buildsTheGoldenBatchByteForByte() throws {
        #expect(Self.goldenBatch.count == 79)
        let built = Self.buildGoldenBatch()
        #expect(hexString(built) == hexString(Self.goldenBatch))
    }

    @Test func checksumsTheGoldenBatchWithCRC32C() throws {
        let bytes = Self.goldenBatch
        #expect(referenceCRC32C(bytes[17...]) == 0x165A_09BE, "the literal's crc was derived with CRC-32C")
        try bytes.withUnsafeBytes { buffer in
            #expect(RecordBatch.computeChecksum(buffer) == 0x165A_09BE)
            let header = try RecordBatch.validate(buffer)
            #expect(header.baseOffset == 0)
            #expect(header.batchLength == 67)
            #expect(header.magic == 1)
            #expect(header.crc == 0x165A_09BE)
            #expect(header.attributes == 0)
            #expect(header.lastOffsetDelta == 1)
            #expect(header.firstTimestamp == 1005)
            #expect(header.maxTimestamp == 1005)
            #expect(header.producerID == -1)
            #expect(header.producerEpoch == -1)
            #expect(header.baseSequence == -1)
            #expect(header.recordCount == 2)
            #expect(header.totalSize == 79)
            #expect(header.lastOffset == 1)
            #expect(header.nextOffset == 2)
        }
    }

    @Test func decodesTheGoldenBatchRecords() throws {
        var bytes = Self.goldenBatch
        bytes.replaceSubrange(0..<8, with: withUnsafeBytes(of: Int64(40).littleEndian) { Array($0) })
        let records = try bytes.withUnsafeBytes { buffer in
            try RecordBatch.validate(buffer)
            return try RecordBatch.records(in: buffer)
        }
        #expect(records == [
            Record(offset: 40, timestamp: 1005, key: Array("k".utf8), value: Array("hi".utf8), headers: [RecordHeader(name: "h", value: [1])]),
            Record(offset: 41, timestamp: 998, key: nil, value: Array("x".utf8)),
        ])
    }

    // MARK: CRC-32C

    @Test(arguments: [
        (Array("123456789".utf8), 0xE306_9283),
        ([UInt8](repeating: 0, count: 32), 0x8A91_36AA),
        ([UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
        ([], 0),
    ] as [([UInt8], UInt32)])
    func matchesKnownCRC32CVectors(input: [UInt8], expected: UInt32) {
        #expect(referenceCRC32C(input) == expected)
        input.withUnsafeBytes { buffer in
            #expect(spool_crc32c(0, buffer.baseAddress, buffer.count) == expected)
            #expect(spool_crc32c_portable(0, buffer.baseAddress, buffer.count) == expected)
        }
    }

    @Test func agreesAcrossBothPathsForRandomLengthsAndAlignments() {
        var rng = SeededGenerator.logged()
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096 + 16, alignment: 16)
        defer { storage.deallocate() }
        for _ in 0..<2_000 {
            let length = rng.bool() ? rng.int(0...40) : rng.int(0...4096)
            let alignment = rng.int(0...15)
            let data = rng.bytes(length)
            let region = UnsafeMutableRawBufferPointer(rebasing: storage[alignment..<(alignment + length)])
            data.withUnsafeBytes { region.copyMemory(from: $0) }
            let seedCRC = rng.bool() ? 0 : UInt32.random(in: 0...UInt32.max, using: &rng)
            let expected = referenceCRC32C(data, crc: seedCRC)
            let hardware = spool_crc32c(seedCRC, region.baseAddress, length)
            let portable = spool_crc32c_portable(seedCRC, region.baseAddress, length)
            #expect(hardware == expected, "length \(length) alignment \(alignment)")
            #expect(portable == expected, "length \(length) alignment \(alignment)")

            // Continuing from a partial CRC gives the CRC of the whole.
            let split = rng.int(0...length)
            let first = spool_crc32c(seedCRC, region.baseAddress, split)
            #expect(spool_crc32c(first, region.baseAddress.map { $0 + split }, length - split) == expected)
            let firstPortable = spool_crc32c_portable(seedCRC, region.baseAddress, split)
            #expect(spool_crc32c_portable(firstPortable, region.baseAddress.map { $0 + split }, length - split) == expected)
        }
    }
}
