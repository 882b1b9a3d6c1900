import ArgumentParser
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

    /// Opens (creating if needed) the provider's file at `path` and runs `schema` (idempotent SQL)
    /// on it. WAL without a sync per commit: a provider's own durability is not what the sample
    /// shows, and its calls must not cost more than the services' own transactions.
    public init(path: String, failureRate: Double, lostAckRate: Double, schema: String) throws {
        var configuration = Configuration()
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        database = try DatabaseQueue(path: path, configuration: configuration)
        try database.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
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

/// The options of a service's simulated external provider: how often it fails.
public struct FlakinessOptions: ParsableArguments {
    @Option(help: "Share of calls the simulated provider refuses (0…1, below 1).")
    public var failureRate = 0.2

    @Option(help: "Share of the provider's accepted calls whose acknowledgement is lost (0…1, below 1).")
    public var lostAckRate = 0.05

    public init() {}

    public func validate() throws {
        guard (0..<1).contains(failureRate) else { throw ValidationError("--failure-rate must be in 0…1 and below 1 (1 would never succeed)") }
        guard (0..<1).contains(lostAckRate) else { throw ValidationError("--lost-ack-rate must be in 0…1 and below 1 (1 would never succeed)") }
    }
}
