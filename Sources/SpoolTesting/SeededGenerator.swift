import Foundation
import Spool

/// A seeded random generator (SplitMix64) for tests that must be replayable: ``logged(_:)``
/// prints the seed it uses, and `SPOOL_TEST_SEED=<seed>` in the environment makes every
/// logged generator start from that seed instead of a fresh one.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator that always produces the same sequence for `seed`.
    public init(seed: UInt64) { state = seed }

    /// A generator seeded from `SPOOL_TEST_SEED` or at random, printing the seed with `name`.
    public static func logged(_ name: String = #function) -> SeededGenerator {
        let seed = ProcessInfo.processInfo.environment["SPOOL_TEST_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 0...UInt64.max)
        print("seed", seed, "test", name, "(replay with SPOOL_TEST_SEED=\(seed))")
        return SeededGenerator(seed: seed)
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `count` random bytes.
    public mutating func bytes(_ count: Int) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(count + 8)
        while result.count < count { withUnsafeBytes(of: next()) { result.append(contentsOf: $0) } }
        result.removeLast(result.count - count)
        return result
    }

    /// A random integer in `range`.
    public mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }

    /// A random boolean.
    public mutating func bool() -> Bool { Bool.random(using: &self) }

    /// A record meant to break encoders: a value that is empty, text with JSON-hostile
    /// characters, invalid UTF-8 or random binary; sometimes a key (empty, text or binary);
    /// sometimes headers (binary values, repeated and non-ASCII names).
    public mutating func record(timestamp: Int64? = nil) -> OutgoingRecord {
        let value: [UInt8]
        switch int(0...5) {
        case 0: value = []
        case 1: value = Array("text \(UInt32.random(in: 0...UInt32.max, using: &self)) \"q\" \\ \t\n\r\u{0}\u{1F} é 漢字 🎉 \u{2028}".utf8)
        case 2: value = [0xC3, 0x28, 0xFF] + bytes(int(0...63))  // invalid UTF-8
        case 3: value = Array("{\"json\": [1, 2, 3]}".utf8)
        default: value = bytes(int(1...1023))
        }
        let key: [UInt8]? = switch int(0...3) {
        case 0: nil
        case 1: []
        case 2: Array("key-\(int(0...99))".utf8)
        default: [0x80] + bytes(int(0...23))
        }
        let names = ["trace-id", "h", "ключ", "h"]
        let headers = (0..<int(0...3)).map { number in
            RecordHeader(name: names[number], value: bool() ? Array("v\(number)".utf8) : bytes(int(0...15)))
        }
        return OutgoingRecord(key: key, value: value, headers: headers, timestamp: timestamp)
    }
}
