import ServiceLifecycle

/// A producer in a `ServiceGroup`: it works from its creation on; `run()` only ties its end to
/// the group's graceful shutdown.
extension Producer: Service {
    /// Waits for the graceful shutdown (or cancellation) of the `ServiceGroup` running it, then
    /// closes the producer: sends everything buffered and waits until it is acknowledged. Throws
    /// like ``close()``: the first failure of an enqueued record.
    public func run() async throws {
        try? await gracefulShutdown()
        try await close()
    }
}

/// A consumer in a `ServiceGroup`: records are iterated elsewhere; `run()` ties the consumer's
/// end to the group's graceful shutdown.
extension Consumer: Service {
    /// Waits for the graceful shutdown (or cancellation) of the `ServiceGroup` running it, then
    /// closes the consumer as ``close(countingLastRecord:)`` does: commits what was processed,
    /// leaves the group, ends the iteration.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }
}
