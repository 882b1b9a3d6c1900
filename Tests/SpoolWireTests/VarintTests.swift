import SpoolTesting
import SpoolWire
import Testing

@Suite struct VarintTests {
    @Test(arguments: [
        (UInt64(0), "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8001"),
        (300, "ac02"),
        (16_383, "ff7f"),
        (16_384, "808001"),
        (UInt64(UInt32.max), "ffffffff0f"),
        (UInt64(Int64.max), "ffffffffffffffff7f"),
        (UInt64.max, "ffffffffffffffffff01"),
    ])
    func encodesUnsignedVarints(value: UInt64, hex: String) throws {
        var writer = WireWriter()
        writer.writeVarint(value)
        #expect(hexString(writer.bytes) == hex)
        #expect(WireWriter.varintSize(value) == writer.bytes.count)
        let decoded = try withExactBytes(writer.bytes) { bytes throws(WireError) in
            var reader = WireReader(bytes)
            let value = try reader.readVarint()
            #expect(reader.isAtEnd)
            return value
        }
        #expect(decoded == value)
    }

    @Test(arguments: [
        (Int64(0), "00"),
        (-1, "01"),
        (1, "02"),
        (-2, "03"),
        (63, "7e"),
        (-64, "7f"),
        (64, "8001"),
        (Int64.max, "feffffffffffffffff01"),
        (Int64.min, "ffffffffffffffffff01"),
    ])
    func encodesZigZagVarints(value: Int64, hex: String) throws {
        var writer = WireWriter()
        writer.writeZigZag(value)
        #expect(hexString(writer.bytes) == hex)
        #expect(WireWriter.zigZagSize(value) == writer.bytes.count)
        let decoded = try withExactBytes(writer.bytes) { bytes throws(WireError) in
            var reader = WireReader(bytes)
            return try reader.readZigZag()
        }
        #expect(decoded == value)
    }

    @Test func roundTripsRandomVarintsBackToBack() throws {
        var rng = SeededGenerator.logged()
        var unsigned: [UInt64] = []
        var signed: [Int64] = []
        var writer = WireWriter(capacity: 0)
        var expectedSize = 0
        for _ in 0..<5_000 {
            // Spread over every magnitude, not just huge values.
            let u = rng.next() >> UInt64.random(in: 0...63, using: &rng)
            let s = Int64(bitPattern: rng.next()) >> Int64.random(in: 0...63, using: &rng)
            unsigned.append(u)
            signed.append(s)
            writer.writeVarint(u)
            writer.writeZigZag(s)
            expectedSize += WireWriter.varintSize(u) + WireWriter.zigZagSize(s)
        }
        #expect(writer.bytes.count == expectedSize)
        try withExactBytes(writer.bytes) { bytes throws(WireError) in
            var reader = WireReader(bytes)
            for (u, s) in zip(unsigned, signed) {
                #expect(try reader.readVarint() == u)
                #expect(try reader.readZigZag() == s)
            }
            #expect(reader.isAtEnd)
        }
    }

    @Test(arguments: [
        ("11 bytes", "80808080808080808080 00"),
        ("10th byte above 1", "ffffffffffffffffff 02"),
        ("10th byte with continuation", "ffffffffffffffffff 81 00"),
        ("truncated", "8080"),
        ("empty", ""),
    ])
    func rejectsBadVarints(name: String, hex: String) {
        let error = wireError { () throws(WireError) in
            try withExactBytes(hexBytes(hex)) { bytes throws(WireError) in
                var reader = WireReader(bytes, errorCode: .corruptBatch)
                return try reader.readVarint()
            }
        }
        #expect(error?.code == .corruptBatch, "the reader's error code is used")
    }

    @Test func readsFixedWidthFieldsLittleEndian() throws {
        var writer = WireWriter()
        writer.write(UInt16(0x0102))
        writer.write(Int32(-2))
        writer.write(true)
        writer.write(false)
        writer.write(bytes: [9, 8])
        writer.write("hé")
        writer.write(array: [Int16(1), -1]) { $0.write($1) }
        #expect(hexString(writer.bytes) == "0201" + "feffffff" + "01" + "00" + "02000000" + "0908" + "0300" + "68c3a9"
                + "02000000" + "0100" + "ffff")
        try withExactBytes(writer.bytes) { bytes throws(WireError) in
            var reader = WireReader(bytes)
            #expect(try reader.read(UInt16.self) == 0x0102)
            #expect(try reader.read(Int32.self) == -2)
            #expect(try reader.readBool() == true)
            #expect(try reader.readBool() == false)
            #expect(try reader.readBytes() == [9, 8])
            #expect(try reader.readString() == "hé")
            #expect(try reader.readCount(minimumElementSize: 2) == 2)
            #expect(try reader.read(Int16.self) == 1)
            #expect(try reader.read(Int16.self) == -1)
            #expect(reader.isAtEnd)
            #expect(reader.remaining == 0)
            let error = wireError { () throws(WireError) in try reader.read(UInt8.self) }
            #expect(error?.code == .malformedRequest)
            #expect(error?.message.contains("at byte 27 of 27") == true, "\(String(describing: error))")
        }
    }

    @Test func rejectsBooleansOtherThanZeroOrOne() {
        let error = wireError { () throws(WireError) in
            try withExactBytes([2]) { bytes throws(WireError) in
                var reader = WireReader(bytes)
                return try reader.readBool()
            }
        }
        #expect(error?.code == .malformedRequest)
    }

    @Test func rejectsNegativeRawCounts() {
        let error = wireError { () throws(WireError) in
            try withExactBytes([1, 2, 3]) { bytes throws(WireError) in
                var reader = WireReader(bytes)
                return try reader.readRaw(count: -1).count
            }
        }
        #expect(error?.code == .malformedRequest)
    }
}
