import GRDB

/// A call to an external system that failed: refused, or its acknowledgement lost after it acted.
public struct ExternalFailure: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var reason: String

    public init(reason: String) { self.reason = reason }

    public var description: String { reason }
}

/// The stand-in for an external provider (a messaging API, a rider dispatch): an SQLite file of
/// its own. It refuses a share of calls before acting (`failureRate`: "unavailable") and loses the
/// acknowledgement of a share after acting (`lostAckRate`: the call took effect, the caller is
/// told it failed and tries again), so its callers must retry, and must send an idempotency key
/// that the provider honours, as real ones do.
public final class FlakyExternalSystem: Sendable {
    /// The provider's own database.
    public let database: DatabaseQueue
    /// Share of calls refused before acting, 0…1.
    public let failureRate: Double
    /// Share of calls that acted whose acknowledgement is lost, 0…1.
    public let lostAckRate: Double

    /// Opens (creating if needed) the provider's file at `path` and runs `schema` (idempotent SQL) on it.
    public init(path: String, failureRate: Double, lostAckRate: Double, schema: String) throws {
        database = try DatabaseQueue(path: path)
        self.failureRate = failureRate
        self.lostAckRate = lostAckRate
        try database.write { db in try db.execute(sql: schema) }
    }

    /// Runs `action` in one transaction of the provider's file, failing as configured: before
    /// it (nothing happened) or after it (it happened). `action`'s own errors pass through.
    public func call<T>(_ action: (Database) throws -> T) throws -> T {
        if Double.random(in: 0..<1) < failureRate { throw ExternalFailure(reason: "unavailable (simulated)") }
        let result = try database.write(action)
        if Double.random(in: 0..<1) < lostAckRate { throw ExternalFailure(reason: "acknowledgement lost (simulated)") }
        return result
    }
}
