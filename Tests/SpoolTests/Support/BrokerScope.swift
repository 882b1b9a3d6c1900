import Spool
import SpoolServer
import SpoolTesting

/// Starts an ``InProcessBroker``, runs `body`, and stops the broker whether `body` succeeds or throws.
func withBroker<T>(_ transport: InProcessBroker.Transport,
                   configure: (inout ServerConfiguration) -> Void = { _ in },
                   _ body: (InProcessBroker) async throws -> T) async throws -> T {
    let broker = try InProcessBroker(transport: transport, configure: configure)
    do {
        let result = try await body(broker)
        await broker.stop()
        return result
    } catch {
        await broker.stop()
        throw error
    }
}
