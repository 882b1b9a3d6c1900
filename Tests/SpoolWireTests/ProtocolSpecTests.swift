import Foundation
import Spool
import SpoolWire
import Testing

/// `docs/protocol.md`, the published wire protocol, kept true: its op-code and error-code tables
/// list exactly the codes the code knows, with their numbers and names, and its worked examples
/// are the bytes the codec writes.
@Suite struct ProtocolSpecTests {
    static let spec: String = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/protocol.md")
        return (try? String(contentsOf: url, encoding: .utf8)) ?? ""
    }()

    /// Rows `| number | `name` | …` of the spec's tables, with their other cells.
    static func rows(where keep: ([String]) -> Bool) -> [(number: Int, name: String, cells: [String])] {
        spec.split(separator: "\n").compactMap { line -> (Int, String, [String])? in
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
                .map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 3, let number = Int(cells[0]), cells[1].hasPrefix("`"), cells[1].hasSuffix("`"), keep(cells) else { return nil }
            return (number, String(cells[1].dropFirst().dropLast()), Array(cells.dropFirst(2)))
        }
    }

    /// `listOffsets` → "list offsets", `initProducerID` → "init producer id": the code's names.
    static func words(_ swiftName: String) -> String {
        var out = ""
        var previous: Character?
        for character in swiftName {
            if character.isUppercase, previous?.isLowercase == true { out.append(" ") }
            out.append(character)
            previous = character
        }
        return out.lowercased()
    }

    @Test func theSpecIsThere() {
        #expect(Self.spec.contains("# The Spool wire protocol, version 1"))
    }

    @Test func everyOpCodeIsSpecifiedWithItsNumberAndName() {
        let specified = Self.rows { $0.count == 3 }
        let known = (0...255).map { OpCode(rawValue: UInt8($0)) }.filter { !$0.description.hasPrefix("op ") }
        #expect(specified.map(\.number) == known.map { Int($0.rawValue) }, "op codes in the spec and in the code")
        for row in specified {
            #expect(OpCode(rawValue: UInt8(row.number)).description == Self.words(row.name), "op \(row.number) is `\(row.name)` in the spec")
        }
    }

    @Test func everyErrorCodeIsSpecifiedWithItsNumberNameAndWhetherToRetry() {
        let specified = Self.rows { $0.count == 4 && ["yes", "no"].contains($0[2]) }
        let known = (0...UInt16(1000)).map(ErrorCode.init(rawValue:)).filter { !$0.name.hasPrefix("error ") }
        #expect(specified.map(\.number) == known.map { Int($0.rawValue) }, "error codes in the spec and in the code")
        for row in specified {
            let code = ErrorCode(rawValue: UInt16(row.number))
            #expect(code.name == Self.words(row.name), "error \(row.number) is `\(row.name)` in the spec")
            // "yes" where the Swift client retries: what SpoolError calls retriable, and an
            // out-of-order sequence, which the producer resends by itself.
            let retried = SpoolError(SpoolError.Code(code), "").isRetriable || code == .outOfOrderSequence
            #expect((row.cells[0] == "yes") == retried, "error \(row.number) `\(row.name)`: retriable is \(row.cells[0]) in the spec")
        }
    }

    /// The bytes of the ```` ```hex example=NAME ```` block.
    static func example(_ name: String) throws -> [UInt8] {
        let opening = "```hex example=\(name)\n"
        let start = try #require(spec.range(of: opening), "no example \(name) in the spec")
        let end = try #require(spec.range(of: "```", range: start.upperBound..<spec.endIndex))
        return try spec[start.upperBound..<end.lowerBound].split(whereSeparator: \.isWhitespace).map {
            try #require(UInt8($0, radix: 16), "example \(name): '\($0)' is not a hex byte")
        }
    }

    @Test func theWorkedExamplesAreTheBytesTheCodecWrites() throws {
        var batch = RecordBatchBuilder()
        batch.append(timestamp: 1_700_000_000_000, key: Array("k".utf8), value: Array("hello".utf8), headers: [RecordHeader(name: "h", string: "v")])
        let built: [(String, [UInt8])] = [
            ("produce-header", FrameHeader(opCode: .produce, correlationID: 1).encoded()),
            ("produce-body", ProduceRequest(topic: "orders", partition: 0).encoded()),
            ("produce-batch", batch.finish()),
            ("fetch-header", FrameHeader(opCode: .fetch, correlationID: 2).encoded()),
            ("fetch-body", FetchRequest(topic: "orders", partition: 0, offset: 0, maxWaitMilliseconds: 1000, minBytes: 1, maxBytes: 1_048_576).encoded()),
            ("fetch-reply-body", FetchResponse(partition: 0, logStartOffset: 0, logEndOffset: 1).encoded()),
        ]
        for (name, bytes) in built {
            #expect(try Self.example(name) == bytes, "example \(name)")
        }
        let example = try Self.example("produce-batch")
        #expect(throws: Never.self) { try example.withUnsafeBytes { try RecordBatch.validate($0, checkingTimestamps: true) } }
    }
}
