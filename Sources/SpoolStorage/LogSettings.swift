/// The textual settings of a log, as they appear in `spoold.yaml`, in `topic.json` and in a
/// create-topic request: `key → value` strings, parsed and range-checked in one place.
///
/// | key                   | value                          | sets                                          |
/// |-----------------------|--------------------------------|-----------------------------------------------|
/// | `fsync`               | `always`, `interval`, `never`  | ``LogConfiguration/fsync``                    |
/// | `fsync.interval.ms`   | 1...3600000                    | the period of `fsync: interval`               |
/// | `segment.bytes`       | 4096...2^40                    | ``LogConfiguration/segmentBytes``             |
/// | `segment.ms`          | 1...2^53, or -1 for never      | ``LogConfiguration/segmentMilliseconds``      |
/// | `index.interval.bytes`| 1...2^30                       | ``LogConfiguration/indexIntervalBytes``       |
/// | `retention.ms`        | 1...2^53, or -1 for forever    | ``LogConfiguration/retentionMilliseconds``    |
/// | `retention.bytes`     | 0...2^62, or -1 for no limit   | ``LogConfiguration/retentionBytes``           |
public enum LogSettings {
    /// Every key, in the order above.
    public static let keys = ["fsync", "fsync.interval.ms", "segment.bytes", "segment.ms", "index.interval.bytes",
                              "retention.ms", "retention.bytes"]
    /// The sync period `fsync: interval` gets when `fsync.interval.ms` is not given.
    public static let defaultFsyncIntervalMilliseconds = 50

    /// `base` with `settings` applied. The result does not depend on the order of the keys:
    /// `fsync.interval.ms` sets the period whenever the resulting policy is `interval`. Throws
    /// ``StorageError/Code/invalidArgument`` naming the first unknown key or bad value, for
    /// example "retention.ms: expected an integer in 1...9007199254740992 or -1, got 'soon'".
    public static func apply(_ settings: [String: String], to base: LogConfiguration) throws(StorageError) -> LogConfiguration {
        var configuration = base
        for key in settings.keys.sorted() where !keys.contains(key) {
            throw StorageError(.invalidArgument, "\(key): unknown setting; known: \(keys.joined(separator: ", "))")
        }
        if let value = settings["segment.bytes"] { configuration.segmentBytes = try integer(value, key: "segment.bytes", in: 4096...(1 << 40)) }
        if let value = settings["segment.ms"] { configuration.segmentMilliseconds = try optionalInteger(value, key: "segment.ms", in: 1...(1 << 53)) }
        if let value = settings["index.interval.bytes"] {
            configuration.indexIntervalBytes = try integer(value, key: "index.interval.bytes", in: 1...(1 << 30))
        }
        if let value = settings["retention.ms"] {
            configuration.retentionMilliseconds = try optionalInteger(value, key: "retention.ms", in: 1...(1 << 53))
        }
        if let value = settings["retention.bytes"] {
            configuration.retentionBytes = try optionalInteger(value, key: "retention.bytes", in: 0...(1 << 62))
        }
        var interval: Int?
        if let value = settings["fsync.interval.ms"] { interval = try integer(value, key: "fsync.interval.ms", in: 1...3_600_000) }
        if case .interval(let current) = base.fsync { interval = interval ?? current }
        switch settings["fsync"] {
        case nil:
            if case .interval = configuration.fsync, let interval { configuration.fsync = .interval(milliseconds: interval) }
        case "always": configuration.fsync = .always
        case "interval": configuration.fsync = .interval(milliseconds: interval ?? defaultFsyncIntervalMilliseconds)
        case "never": configuration.fsync = .never
        case let other?: throw StorageError(.invalidArgument, "fsync: '\(other)' is not one of always, interval, never")
        }
        return configuration
    }

    private static func integer(_ text: String, key: String, in range: ClosedRange<Int>) throws(StorageError) -> Int {
        guard let value = Int(text.replacingOccurrences(of: "_", with: "")), range.contains(value) else {
            throw StorageError(.invalidArgument, "\(key): expected an integer in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
        }
        return value
    }

    /// An integer in `range`, or nil for -1.
    private static func optionalInteger(_ text: String, key: String, in range: ClosedRange<Int>) throws(StorageError) -> Int64? {
        guard let value = Int(text.replacingOccurrences(of: "_", with: "")), value == -1 || range.contains(value) else {
            throw StorageError(.invalidArgument, "\(key): expected an integer in \(range.lowerBound)...\(range.upperBound) or -1, got '\(text)'")
        }
        return value == -1 ? nil : Int64(value)
    }
}
