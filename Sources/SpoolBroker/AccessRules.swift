import SpoolWire

/// What a client may do to a topic.
public enum AccessOperation: String, Sendable, Hashable, CaseIterable {
    /// Append records.
    case produce
    /// Read records, look up offsets, consume in a group and commit its offsets.
    case consume
    /// Create or delete the topic.
    case admin
}

/// Per-topic access rules by client identity (the name a client's CURVE key has in
/// `curve.clients`). With rules in force, everything not granted is refused.
///
/// A rule's pattern is a topic name, a prefix ending in `*` (`orders.*`), or `*` alone; a topic
/// follows the most specific pattern that matches it (its exact name, else the longest prefix,
/// else `*`) and only that one. A rule grants each operation to a set of client names, where `*`
/// means every admitted client.
public struct AccessRules: Sendable, Hashable {
    /// One pattern's grants.
    public struct Rule: Sendable, Hashable {
        /// Topic name, `prefix*`, or `*`.
        public var pattern: String
        /// Client names per operation; `*` for every client.
        public var grants: [AccessOperation: Set<String>]

        public init(pattern: String, grants: [AccessOperation: Set<String>]) {
            self.pattern = pattern
            self.grants = grants
        }
    }

    /// The rules, in any order.
    public var rules: [Rule]

    public init(rules: [Rule]) { self.rules = rules }

    /// True if `client` may perform `operation` on `topic`. A client without an identity (no
    /// CURVE) is refused everything.
    public func allows(_ client: String?, _ operation: AccessOperation, on topic: TopicName) -> Bool {
        guard let client, let rule = rule(for: topic.rawValue), let names = rule.grants[operation] else { return false }
        return names.contains("*") || names.contains(client)
    }

    /// The rule that governs `topic`: exact name, else the longest matching prefix, else `*`.
    func rule(for topic: String) -> Rule? {
        if let exact = rules.first(where: { $0.pattern == topic }) { return exact }
        return rules.filter { $0.pattern.hasSuffix("*") && topic.hasPrefix($0.pattern.dropLast()) }
            .max { $0.pattern.count < $1.pattern.count }
    }
}
