/// A topic name that passed the naming rules: 1–249 characters of `[A-Za-z0-9._-]`, and not
/// `.` or `..`. A `TopicName` is safe to use as a directory name; nothing else is.
public struct TopicName: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Longest allowed name, in bytes.
    public static let maxLength = 249

    /// The validated name.
    public let rawValue: String

    /// Validates `name`; throws ``ErrorCode/invalidTopicName`` with the reason.
    public init(_ name: String) throws(WireError) {
        let utf8 = name.utf8
        guard !utf8.isEmpty else { throw WireError(.invalidTopicName, "topic name is empty") }
        guard utf8.count <= TopicName.maxLength else {
            throw WireError(.invalidTopicName, "topic name is \(utf8.count) characters; the limit is \(TopicName.maxLength)")
        }
        guard name != ".", name != ".." else {
            throw WireError(.invalidTopicName, "topic name '\(name)' is not allowed")
        }
        if let bad = utf8.first(where: { !TopicName.isAllowed($0) }) {
            let shown = bad < 0x80 && bad >= 0x20 ? "'\(Character(Unicode.Scalar(bad)))'" : "byte 0x\(String(bad, radix: 16))"
            throw WireError(.invalidTopicName,
                            "topic name '\(name.prefix(60))' contains \(shown); use letters, digits, '.', '_' and '-'")
        }
        rawValue = name
    }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }

    public var description: String { rawValue }
    public static func < (lhs: TopicName, rhs: TopicName) -> Bool { lhs.rawValue < rhs.rawValue }
}
