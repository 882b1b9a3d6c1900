import Foundation

/// The committed fuzz corpus of one target: `Fuzz/Corpus/<target>/` at the root of this
/// repository, every file, sorted by name. The fuzz-corpus tests replay it through the same entry
/// points `scripts/fuzz.sh` gives libFuzzer.
public struct FuzzCorpus: Sendable {
    /// `Fuzz/Corpus` of the repository this file belongs to.
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/Corpus")

    /// Every file of the target's corpus with its bytes, sorted by name.
    public let files: [(name: String, bytes: [UInt8])]

    /// Reads the corpus of `target`; throws if its directory cannot be read.
    public init(target: String) throws {
        let directory = Self.root.appendingPathComponent(target)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { !$0.hasPrefix(".") }.sorted()
        files = try names.map { name in (name, Array(try Data(contentsOf: directory.appendingPathComponent(name)))) }
    }

    /// Runs `body` on a copy of `bytes` in memory of exactly their size, as libFuzzer does, so a
    /// read past the end is caught by the address sanitizer.
    public static func withExactBytes(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
        defer { copy.deallocate() }
        bytes.withUnsafeBytes { copy.copyMemory(from: $0) }
        try body(UnsafeRawBufferPointer(copy))
    }

    /// Replaces the `seed-*` files of `target` with `seeds`, leaving other files (inputs merged
    /// from fuzzing runs) alone.
    public static func writeSeeds(_ seeds: [(String, [UInt8])], target: String) throws {
        let directory = root.appendingPathComponent(target)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) where name.hasPrefix("seed-") {
            try FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
        for (name, bytes) in seeds { try Data(bytes).write(to: directory.appendingPathComponent(name)) }
    }
}

/// A seeded mutation loop in the style of libFuzzer's mutators (bit flips, interesting values,
/// inserts, deletes, copies, splices with other corpus files), for CI without the sanitizer build.
public struct FuzzMutator: Sendable {
    /// Wall time per target; `SPOOL_FUZZ_SECONDS` overrides the default of one second.
    public static let budget = Duration.milliseconds(
        Int((Double(ProcessInfo.processInfo.environment["SPOOL_FUZZ_SECONDS"] ?? "") ?? 1) * 1000))

    /// The first input that failed: its number, the error, and its bytes in hex.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The generator of the mutations (log its seed to replay a run).
    public var rng: SeededGenerator
    /// The inputs mutations start from.
    public let corpus: [[UInt8]]

    /// A mutator over `corpus` (at least one input) driven by `rng`.
    public init(rng: SeededGenerator, corpus: [[UInt8]]) {
        precondition(!corpus.isEmpty, "a mutator needs at least one corpus input")
        self.rng = rng
        self.corpus = corpus
    }

    /// Runs `body` on mutated corpus inputs (each optionally passed through `repair`, half of the
    /// time) until `budget` passes; returns how many ran. Throws ``Failure`` for the first input
    /// `body` throws on.
    public mutating func run(for budget: Duration, repair: ((inout [UInt8], inout SeededGenerator) -> Void)? = nil,
                             _ body: ([UInt8]) throws -> Void) throws -> Int {
        let deadline = ContinuousClock.now + budget
        var count = 0
        while ContinuousClock.now < deadline {
            var input = mutate(corpus[rng.int(0...corpus.count - 1)])
            if let repair, rng.bool() { repair(&input, &rng) }
            count += 1
            do {
                try body(input)
            } catch {
                throw Failure(description: "mutated input \(count) (\(input.count) bytes): \(error)\ninput: \(input.map { String(format: "%02x", $0) }.joined())")
            }
        }
        return count
    }

    /// One to four random mutations of `original`.
    public mutating func mutate(_ original: [UInt8]) -> [UInt8] {
        var bytes = original
        for _ in 0..<rng.int(1...4) {
            let position = bytes.isEmpty ? 0 : rng.int(0...bytes.count - 1)
            switch rng.int(0...7) {
            case 0 where !bytes.isEmpty:
                bytes[position] ^= 1 << UInt8(rng.int(0...7))
            case 1 where !bytes.isEmpty:
                bytes[position] = UInt8.random(in: 0...255, using: &rng)
            case 2:
                bytes.insert(contentsOf: rng.bytes(rng.int(1...8)), at: bytes.isEmpty ? 0 : rng.int(0...bytes.count))
            case 3 where !bytes.isEmpty:
                bytes.removeSubrange(position..<min(bytes.count, position + rng.int(1...16)))
            case 4 where bytes.count >= 8:
                // An interesting little-endian value over a length, count or offset field.
                let values: [UInt64] = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF, UInt64(Int64.max), .max, 1 << 31]
                let width = [1, 2, 4, 8][rng.int(0...3)]
                let at = rng.int(0...bytes.count - width)
                let value = values[rng.int(0...values.count - 1)]
                for index in 0..<width { bytes[at + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index))) }
            case 5:
                bytes.removeLast(rng.int(0...min(bytes.count, 64)))
            case 6:
                let other = corpus[rng.int(0...corpus.count - 1)]
                let start = other.isEmpty ? 0 : rng.int(0...other.count - 1)
                bytes.replaceSubrange(min(position, bytes.count)..., with: other[start...])
            case 7 where !bytes.isEmpty:
                let chunk = Array(bytes[position..<min(bytes.count, position + rng.int(1...32))])
                bytes.insert(contentsOf: chunk, at: rng.int(0...bytes.count))
            default:
                bytes.append(UInt8.random(in: 0...255, using: &rng))
            }
        }
        return bytes
    }
}
