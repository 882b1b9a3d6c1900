import ArgumentParser

/// A byte size given on the command line: a number of bytes, optionally with a binary suffix
/// (`100B`, `64KiB`, `256MiB`, `1GiB`; `K`, `M` and `G` mean the same, case does not matter).
struct ByteCount: ExpressibleByArgument, Sendable, Hashable, CustomStringConvertible {
    /// Binary suffixes and the power of two they stand for, longest first so `KiB` wins over `B`.
    private static let suffixes: [(suffix: String, shift: Int)] = [
        ("kib", 10), ("mib", 20), ("gib", 30), ("k", 10), ("m", 20), ("g", 30), ("b", 0),
    ]

    /// The size in bytes; always positive.
    let bytes: Int

    /// A size of `bytes` bytes.
    init(_ bytes: Int) {
        self.bytes = bytes
    }

    /// Parses `256MiB`, `64k`, `4096` and the like; nil for anything else or a size below 1.
    init?(argument: String) {
        let text = argument.lowercased()
        let unit = Self.suffixes.first { text.hasSuffix($0.suffix) }
        guard let number = Int(text.dropLast(unit?.suffix.count ?? 0)), number > 0,
              number <= Int.max >> (unit?.shift ?? 0) else { return nil }
        bytes = number << (unit?.shift ?? 0)
    }

    /// The size in the largest binary unit that divides it exactly, e.g. `1KiB`, `100B`.
    var description: String {
        for (suffix, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] where bytes % (1 << shift) == 0 {
            return "\(bytes >> shift)\(suffix)"
        }
        return "\(bytes)B"
    }

    /// How `--help` shows a default: the same as ``description``.
    var defaultValueDescription: String { description }
}
