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
/// | `key.index.keys.in.memory` | 1...2^24                  | ``LogConfiguration/keyIndexKeysInMemory``     |
/// | `cleanup.policy`      | `delete`, `compact`, `compact,delete` | ``LogConfiguration/cleanupPolicy``     |
/// | `delete.retention.ms` | 0...2^53                       | ``LogConfiguration/deleteRetentionMilliseconds`` |
public enum LogSettings {
    /// Every key, in the order above.
    public static let keys = ["fsync", "fsync.interval.ms", "segment.bytes", "segment.ms", "index.interval.bytes",
                              "retention.ms", "retention.bytes", "key.index.keys.in.memory", "cleanup.policy", "delete.retention.ms"]
    /// The sync period `fsync: interval` gets when `fsync.interval.ms` is not given.
    public static let defaultFsyncIntervalMilliseconds = 50

    /// `base` with `settings` applied. The result does not depend on the order of the keys:
    /// `fsync.interval.ms` sets the period whenever the resulting policy is `interval`. Throws
    /// ``StorageError/Code/invalidArgument`` naming the first bad key and what is wrong, for
    /// example "retention.ms: expected an integer in 1...9007199254740992 or -1, got 'soon'".
    public static func apply(_ settings: [String: String], to base: LogConfiguration) throws(StorageError) -> LogConfiguration {
        var parsed = Parsed(configuration: base)
        for (key, value) in settings.sorted(by: { $0.key < $1.key }) {
            do throws(StorageError) {
                try parsed.set(key, value)
            } catch {
                throw StorageError(.invalidArgument, "\(key): \(error.message)")
            }
        }
        return parsed.resolved(over: base)
    }

    /// Every key of `configuration` as text, the inverse of ``apply(_:to:)``: `-1` for an unset
    /// limit, `fsync.interval.ms` only under `fsync: interval`.
    public static func settings(of configuration: LogConfiguration) -> [String: String] {
        var settings = [
            "segment.bytes": String(configuration.segmentBytes),
            "segment.ms": String(configuration.segmentMilliseconds ?? -1),
            "index.interval.bytes": String(configuration.indexIntervalBytes),
            "retention.ms": String(configuration.retentionMilliseconds ?? -1),
            "retention.bytes": String(configuration.retentionBytes ?? -1),
            "key.index.keys.in.memory": String(configuration.keyIndexKeysInMemory),
            "cleanup.policy": configuration.cleanupPolicy.rawValue,
            "delete.retention.ms": String(configuration.deleteRetentionMilliseconds),
        ]
        switch configuration.fsync {
        case .always: settings["fsync"] = "always"
        case .never: settings["fsync"] = "never"
        case .interval(let milliseconds):
            settings["fsync"] = "interval"
            settings["fsync.interval.ms"] = String(milliseconds)
        }
        return settings
    }

    /// Checks one setting on its own. Throws ``StorageError/Code/invalidArgument`` saying what is
    /// wrong without naming the key ("unknown setting; known: …", "expected an integer in …").
    public static func check(_ value: String, for key: String) throws(StorageError) {
        var parsed = Parsed(configuration: LogConfiguration())
        try parsed.set(key, value)
    }

    /// Settings parsed so far: everything but the fsync policy goes straight into `configuration`;
    /// the policy and its period are resolved at the end, since either key may come first.
    private struct Parsed {
        var configuration: LogConfiguration
        var policyName: String?
        var fsyncInterval: Int?

        mutating func set(_ key: String, _ text: String) throws(StorageError) {
            switch key {
            case "fsync":
                guard ["always", "interval", "never"].contains(text) else {
                    throw StorageError(.invalidArgument, "'\(text)' is not one of always, interval, never")
                }
                policyName = text
            case "fsync.interval.ms": fsyncInterval = try integer(text, in: 1...3_600_000)
            case "segment.bytes": configuration.segmentBytes = try integer(text, in: 4096...(1 << 40))
            case "segment.ms": configuration.segmentMilliseconds = try optionalInteger(text, in: 1...(1 << 53))
            case "index.interval.bytes": configuration.indexIntervalBytes = try integer(text, in: 1...(1 << 30))
            case "retention.ms": configuration.retentionMilliseconds = try optionalInteger(text, in: 1...(1 << 53))
            case "retention.bytes": configuration.retentionBytes = try optionalInteger(text, in: 0...(1 << 62))
            case "key.index.keys.in.memory": configuration.keyIndexKeysInMemory = try integer(text, in: 1...(1 << 24))
            case "cleanup.policy":
                guard let policy = CleanupPolicy(rawValue: text == "delete,compact" ? "compact,delete" : text) else {
                    throw StorageError(.invalidArgument, "'\(text)' is not one of delete, compact, compact,delete")
                }
                configuration.cleanupPolicy = policy
            case "delete.retention.ms": configuration.deleteRetentionMilliseconds = Int64(try integer(text, in: 0...(1 << 53)))
            default: throw StorageError(.invalidArgument, "unknown setting; known: \(keys.joined(separator: ", "))")
            }
        }

        /// The configuration with the fsync policy resolved: a named policy, or the base's, with
        /// `fsync.interval.ms` (else the base's period, else the default) when it is `interval`.
        func resolved(over base: LogConfiguration) -> LogConfiguration {
            var result = configuration
            var basePeriod: Int?
            if case .interval(let milliseconds) = base.fsync { basePeriod = milliseconds }
            let period = fsyncInterval ?? basePeriod ?? defaultFsyncIntervalMilliseconds
            switch policyName {
            case "always": result.fsync = .always
            case "never": result.fsync = .never
            case "interval": result.fsync = .interval(milliseconds: period)
            default: if basePeriod != nil { result.fsync = .interval(milliseconds: period) }
            }
            return result
        }

        private func integer(_ text: String, in range: ClosedRange<Int>) throws(StorageError) -> Int {
            guard let value = Int(text.replacingOccurrences(of: "_", with: "")), range.contains(value) else {
                throw StorageError(.invalidArgument, "expected an integer in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
            }
            return value
        }

        /// An integer in `range`, or nil for -1.
        private func optionalInteger(_ text: String, in range: ClosedRange<Int>) throws(StorageError) -> Int64? {
            guard let value = Int(text.replacingOccurrences(of: "_", with: "")), value == -1 || range.contains(value) else {
                throw StorageError(.invalidArgument, "expected an integer in \(range.lowerBound)...\(range.upperBound) or -1, got '\(text)'")
            }
            return value == -1 ? nil : Int64(value)
        }
    }
}
