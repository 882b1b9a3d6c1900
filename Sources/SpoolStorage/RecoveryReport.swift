/// What recovery cut or rebuilt in one segment when a ``PartitionLog`` opened. The broker logs
/// each at warning. A report exists only when something was cut, rebuilt or found inconsistent.
public struct RecoveryReport: Sendable, Hashable, CustomStringConvertible {
    /// The `.log` file.
    public var path: String
    /// Bytes kept: whole, valid batches.
    public var validBytes: Int
    /// Bytes cut from the tail; 0 if none.
    public var truncatedBytes: Int
    /// The segment's nextOffset at the cut (the first offset that is gone), if something was cut.
    public var firstLostOffset: Int64?
    /// Why, naming the byte: "torn batch at byte 1234: batch length says 400 bytes, 17 remain",
    /// "corrupt batch at byte …: checksum mismatch …", "index rebuilt: missing", …; several
    /// reasons are joined with "; ".
    public var reason: String
    /// True if the `.index` was missing or wrong and was rebuilt from the `.log`.
    public var indexRebuilt: Bool
    /// Where the cut bytes were saved (`<log>.<validBytes>.corrupt`, numbered `.1`, `.2`, … before
    /// `.corrupt` if that name is taken), so nothing is silently lost; nil when nothing was cut or
    /// the cut bytes were all zero.
    public var setAsidePath: String?

    /// Creates a report.
    public init(path: String, validBytes: Int, truncatedBytes: Int, firstLostOffset: Int64?, reason: String,
                indexRebuilt: Bool, setAsidePath: String? = nil) {
        self.path = path
        self.validBytes = validBytes
        self.truncatedBytes = truncatedBytes
        self.firstLostOffset = firstLostOffset
        self.reason = reason
        self.indexRebuilt = indexRebuilt
        self.setAsidePath = setAsidePath
    }

    /// One line with every field.
    public var description: String {
        var line = "\(path): \(reason); kept \(validBytes) bytes"
        if truncatedBytes > 0 {
            line += ", cut \(truncatedBytes) bytes"
            if let firstLostOffset { line += " from offset \(firstLostOffset)" }
        }
        if indexRebuilt { line += ", index rebuilt" }
        if let setAsidePath { line += ", cut bytes saved to \(setAsidePath)" }
        return line
    }
}
