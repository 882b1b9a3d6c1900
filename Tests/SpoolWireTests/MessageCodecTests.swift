import SpoolTesting
import SpoolWire
import Testing

@Suite struct MessageCodecTests {
    // MARK: Round trips

    @Test(arguments: MessageSamples.all)
    func roundTripsThroughEncodeAndDecode(sample: MessageSample) throws {
        #expect(try sample.decodesToOriginal(sample.encoded))
        let reencoded = try withExactBytes(sample.encoded) { bytes throws(WireError) in try sample.decodeAndReencode(bytes) }
        #expect(reencoded == sample.encoded)
    }

    @Test func roundTripsTheLongestString() throws {
        let name = String(repeating: "é", count: 65_535 / 2) + "x"  // 65,535 bytes of UTF-8
        #expect(name.utf8.count == 65_535)
        let request = ProduceRequest(topic: name, partition: 1)
        let encoded = request.encoded()
        #expect(encoded.count == 2 + 65_535 + 4)
        #expect(try ProduceRequest.decode(encoded) == request)
    }

    @Test func decodesAFullSizedMetadataRequestButNotOneOverTheArrayLimit() throws {
        // 100,000 empty topic names take exactly 100,000 * 2 bytes: allowed.
        var writer = WireWriter()
        writer.write(UInt32(100_000))
        writer.writeRaw(repeatElement(0, count: 200_000))
        writer.write(false)
        let request = try MetadataRequest.decode(writer.bytes)
        #expect(request.topics.count == 100_000)
        #expect(request.topics.allSatisfy { $0.isEmpty })

        // One more element is refused even though the bytes are there.
        var over = WireWriter()
        over.write(UInt32(100_001))
        over.writeRaw(repeatElement(0, count: 200_002))
        over.write(false)
        let error = wireError { () throws(WireError) in try MetadataRequest.decode(over.bytes) }
        #expect(error?.code == .malformedRequest)
        #expect(error?.message.contains("100001") == true)
    }

    // MARK: Golden bytes

    @Test func encodesAFrameHeaderAsExactlySixteenBytes() throws {
        let header = FrameHeader(opCode: .fetch, isReply: true, errorCode: .offsetOutOfRange, correlationID: 0x0102_0304_0506_0708)
        let expected = hexBytes("""
            53                       # magic 'S'
            01                       # version 1
            02                       # opCode fetch
            01                       # flags: bit 0 = reply
            0a 00                    # errorCode 10 (offset out of range), u16 LE
            00 00                    # reserved
            08 07 06 05 04 03 02 01  # correlationID, u64 LE
            """)
        #expect(expected.count == FrameHeader.size)
        #expect(header.encoded() == expected)

        let request = FrameHeader(opCode: .produce, correlationID: 1)
        #expect(request.encoded() == hexBytes("53 01 01 00 0000 0000 0100000000000000"))
        #expect(request.reply(errorCode: .storageError).encoded() == hexBytes("53 01 01 01 0d00 0000 0100000000000000"))
    }

    @Test func encodesMessageBodiesInTheDocumentedLayout() throws {
        // Strings: u16 LE length then UTF-8; integers fixed-width LE.
        #expect(ProduceRequest(topic: "ab", partition: 1).encoded() == hexBytes("0200 6162 01000000"))
        #expect(ProduceResponse(partition: 2, baseOffset: 0x0102, durability: .onDisk).encoded()
                == hexBytes("02000000 0201000000000000 02"))
        #expect(FetchRequest(topic: "t", partition: -1, offset: 3, maxWaitMilliseconds: 500, minBytes: 1, maxBytes: 0x10000).encoded()
                == hexBytes("0100 74 ffffffff 0300000000000000 f4010000 01000000 00000100"))
        #expect(ListOffsetsRequest(topic: "t", partition: 0, spec: .earliest).encoded()
                == hexBytes("0100 74 00000000 feffffffffffffff"))
        #expect(ListOffsetsRequest(topic: "t", partition: 0, spec: .latest).encoded()
                == hexBytes("0100 74 00000000 ffffffffffffffff"))
        // Arrays: u32 LE count then the elements.
        #expect(MetadataRequest(topics: ["a", ""]).encoded() == hexBytes("02000000 0100 61 0000 00"))
        #expect(MetadataRequest(topics: ["a"], allowAutoCreation: true).encoded() == hexBytes("01000000 0100 61 01"))
        let metadata = MetadataResponse(brokerVersion: "v", topics: [
            .init(name: "t", partitions: [.init(partition: 2, logStartOffset: 1, logEndOffset: 0x0102)]),
            .init(name: "u", errorCode: .unknownTopic, partitions: []),
        ])
        #expect(metadata.encoded() == hexBytes("""
            0100 76
            02000000
              0100 74  0000  01000000  02000000 0100000000000000 0201000000000000
              0100 75  0700  00000000
            """))
        #expect(CreateTopicRequest(name: "t", partitions: 3).encoded() == hexBytes("0100 74 03000000 00000000"))
        #expect(CreateTopicRequest(name: "t", partitions: 3, settings: ["b": "2", "a": "1"]).encoded()
            == hexBytes("0100 74 03000000 02000000 0100 61 0100 31 0100 62 0100 32"))
        // Error details go out sorted by name.
        #expect(ErrorResponse(message: "no", details: ["b": 2, "a": -1]).encoded() == hexBytes("""
            0200 6e6f
            02000000
              0100 61 ffffffffffffffff
              0100 62 0200000000000000
            """))
    }

    @Test func cutsLongErrorMessagesOnACharacterBoundary() throws {
        // 3-byte characters: 1024 bytes would end inside one.
        for character in ["€", "é", "🚀", "a\u{301}"] {
            let message = String(repeating: character, count: 2000)
            let encoded = ErrorResponse(message: message, details: ["latest": 4]).encoded()
            let decoded = try encoded.withUnsafeBytes { bytes in try ErrorResponse.decode(bytes) }
            #expect(decoded.message.utf8.count <= 1024)
            #expect(decoded.message.utf8.count > 1024 - 4)
            #expect(message.unicodeScalars.starts(with: decoded.message.unicodeScalars))
            #expect(decoded.details == ["latest": 4])
        }
    }

    // MARK: Truncation and trailing bytes

    @Test(arguments: MessageSamples.all)
    func rejectsEveryStrictPrefix(sample: MessageSample) {
        for length in 0..<sample.encoded.count {
            if length == sample.decodablePrefixLength {
                // Without its optional last field the message is another valid one, never the original.
                #expect((try? sample.decodesToOriginal(Array(sample.encoded.prefix(length)))) == false)
                continue
            }
            let error = wireError { () throws(WireError) in
                try withExactBytes(Array(sample.encoded.prefix(length))) { bytes throws(WireError) in
                    try sample.decodeAndReencode(bytes)
                }
            }
            #expect(error.map { sample.allowedErrorCodes.contains($0.code) } == true,
                    "prefix of \(length) of \(sample.encoded.count) bytes: \(String(describing: error))")
        }
    }

    @Test(arguments: MessageSamples.all)
    func rejectsATrailingByte(sample: MessageSample) {
        for extra in [[UInt8(0)], [0xFF], [0, 0, 0, 0]] {
            let error = wireError { () throws(WireError) in
                try withExactBytes(sample.encoded + extra) { bytes throws(WireError) in try sample.decodeAndReencode(bytes) }
            }
            #expect(error?.code == .malformedRequest, "\(extra): \(String(describing: error))")
        }
    }

    // MARK: Hostile input

    @Test(.timeLimit(.minutes(1)), arguments: MessageSamples.oneOfEachKind)
    func survivesRandomBytes(sample: MessageSample) {
        var rng = SeededGenerator.logged("survivesRandomBytes(\(sample.kind))")
        var decodedCount = 0
        for _ in 0..<5_000 {
            let input = rng.bytes(rng.int(0...300))
            checkDecode(sample, input, decodedCount: &decodedCount)
        }
        print(sample.kind, "decoded", decodedCount, "of 5000 random inputs")
    }

    @Test(.timeLimit(.minutes(1)), arguments: MessageSamples.all)
    func survivesMutatedEncodings(sample: MessageSample) {
        var rng = SeededGenerator.logged("survivesMutatedEncodings(\(sample.testDescription))")
        var decodedCount = 0
        for _ in 0..<1_000 {
            var input = sample.encoded
            for _ in 0..<rng.int(1...3) {
                switch rng.int(0...4) {
                case 0 where !input.isEmpty:
                    input[rng.int(0...input.count - 1)] ^= UInt8.random(in: 1...255, using: &rng)
                case 1:
                    input.insert(UInt8.random(in: 0...255, using: &rng), at: rng.int(0...input.count))
                case 2 where !input.isEmpty:
                    input.remove(at: rng.int(0...input.count - 1))
                case 3 where input.count >= 4:
                    // A length or count field claiming far more than is there.
                    let at = rng.int(0...input.count - 4)
                    for index in at..<(at + rng.int(2...4)) { input[index] = 0xFF }
                default:
                    input.removeLast(min(input.count, rng.int(0...5)))
                }
            }
            checkDecode(sample, input, decodedCount: &decodedCount)
        }
    }

    /// Decodes `input` as the sample's type: it must either throw an allowed code or decode to a
    /// value whose encoding is the input (or, for normalising types, is stable).
    private func checkDecode(_ sample: MessageSample, _ input: [UInt8], decodedCount: inout Int) {
        do throws(WireError) {
            let reencoded = try withExactBytes(input) { bytes throws(WireError) in try sample.decodeAndReencode(bytes) }
            decodedCount += 1
            if sample.reencodesExactly {
                #expect(reencoded == input, "decoded \(hexString(input)) but re-encoded differently")
            } else {
                let again = try withExactBytes(reencoded) { bytes throws(WireError) in try sample.decodeAndReencode(bytes) }
                #expect(again == reencoded, "re-encoding \(hexString(input)) is not stable")
            }
        } catch {
            #expect(sample.allowedErrorCodes.contains(error.code), "\(hexString(input)): \(error)")
            #expect(!error.message.isEmpty)
        }
    }

    @Test func refusesLengthsThatClaimMoreThanIsThere() {
        let cases: [(String, [UInt8], (UnsafeRawBufferPointer) throws(WireError) -> Void)] = [
            ("string of 0xFFFF with 3 bytes left", hexBytes("ffff 616263 00000000"),
             { bytes throws(WireError) in _ = try ProduceRequest.decode(bytes) }),
            ("metadata request count 2^31", hexBytes("00000080 0100 61"),
             { bytes throws(WireError) in _ = try MetadataRequest.decode(bytes) }),
            ("metadata request count 2^32-1", hexBytes("ffffffff"),
             { bytes throws(WireError) in _ = try MetadataRequest.decode(bytes) }),
            ("metadata response topic count 2^31", hexBytes("0000 00000080 0000 0000 00000000"),
             { bytes throws(WireError) in _ = try MetadataResponse.decode(bytes) }),
            ("metadata response partition count 2^32-1", hexBytes("0000 01000000 0100 74 0000 ffffffff 0000000000000000"),
             { bytes throws(WireError) in _ = try MetadataResponse.decode(bytes) }),
            ("error details count 2^32-1", hexBytes("0000 ffffffff 0100 61 0000000000000000"),
             { bytes throws(WireError) in _ = try ErrorResponse.decode(bytes) }),
            ("error message of 0xFFFF", hexBytes("ffff 6e6f"),
             { bytes throws(WireError) in _ = try ErrorResponse.decode(bytes) }),
            ("byte field of 2^32-1", hexBytes("ffffffff 0102"),
             { bytes throws(WireError) in var reader = WireReader(bytes); _ = try reader.readBytes() }),
            ("invalid UTF-8 topic", hexBytes("0200 c328 00000000"),
             { bytes throws(WireError) in _ = try ProduceRequest.decode(bytes) }),
        ]
        for (name, input, decode) in cases {
            let error = wireError { () throws(WireError) in try withExactBytes(input, decode) }
            #expect(error?.code == .malformedRequest, "\(name): \(String(describing: error))")
        }
    }

    @Test func rejectsOffsetSpecsBelowEarliest() throws {
        var writer = WireWriter()
        ListOffsetsRequest(topic: "t", partition: 0, spec: .earliest).encode(into: &writer)
        var bytes = writer.bytes
        bytes.replaceSubrange((bytes.count - 8)..., with: withUnsafeBytes(of: Int64(-3).littleEndian) { Array($0) })
        let error = wireError { () throws(WireError) in try ListOffsetsRequest.decode(bytes) }
        #expect(error?.code == .invalidRequest)
        #expect(OffsetSpec.timestamp(-5) == .timestamp(0), "negative timestamps clamp to 0, not to earliest/latest")
    }

    // MARK: FrameHeader

    @Test func decodesAnySixteenBytesWithTheMagicAndNothingElse() {
        var rng = SeededGenerator.logged()
        for _ in 0..<5_000 {
            var input = rng.bytes(rng.bool() ? FrameHeader.size : rng.int(0...40))
            if rng.bool(), !input.isEmpty { input[0] = FrameHeader.magic }
            let result = Result { () throws(WireError) in try withExactBytes(input) { bytes throws(WireError) in try FrameHeader.decode(bytes) } }
            switch result {
            case .success(let header):
                #expect(input.count == 16 && input[0] == 0x53)
                #expect(header.version == input[1])
                #expect(header.opCode.rawValue == input[2])
                #expect(header.isReply == (input[3] & 1 == 1))
                #expect(header.errorCode.rawValue == UInt16(input[4]) | UInt16(input[5]) << 8)
                #expect(header.correlationID == input[8...].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
                var normalised = input
                normalised[3] &= 1
                normalised[6] = 0
                normalised[7] = 0
                #expect(header.encoded() == normalised)
            case .failure(let error):
                #expect(input.count != 16 || input[0] != 0x53, "\(hexString(input)): \(error)")
                #expect(error.code == .malformedRequest)
            }
        }
    }

    @Test func describesErrorCodesByName() {
        #expect(ErrorCode.offsetOutOfRange.name == "offset out of range")
        #expect(ErrorCode(rawValue: 400).name == "error 400")
        #expect(WireError(.unknownTopic, "topic 'x' does not exist").description == "unknown topic: topic 'x' does not exist")
        #expect(ErrorResponse(message: "m", details: ["latest": 3]).error(code: .offsetOutOfRange)
                == WireError(.offsetOutOfRange, "m", details: ["latest": 3]))
        #expect(OpCode(rawValue: 99).description == "op 99")
        #expect(OpCode.joinGroup.description == "join group")
        #expect(ErrorCode.staleGeneration.name == "stale generation")
    }
}
