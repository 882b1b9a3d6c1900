import Synchronization
import ZeroMQ

/// Where a test's sockets meet.
enum Transport: String, CaseIterable, Sendable {
    case inproc, tcp

    /// An endpoint to bind; read the real one back with `lastEndpoint`.
    var bindEndpoint: String {
        switch self {
        case .inproc: "inproc://\(uniqueName())"
        case .tcp: "tcp://127.0.0.1:*"
        }
    }
}

/// A name no other test uses, for `inproc://` endpoints.
func uniqueName(_ prefix: String = "test") -> String {
    "\(prefix)-\(UInt64.random(in: .min ... .max))"
}

extension Socket {
    /// Waits up to `milliseconds` for a whole message; nil on timeout, so a missing message
    /// fails the test instead of hanging it.
    func receive(within milliseconds: Int) throws -> [Frame]? {
        var poller = Poller()
        _ = poller.add(self)
        guard try poller.poll(timeoutMilliseconds: milliseconds) == 1 else { return nil }
        return try receive(dontWait: true)
    }
}

extension MonitorSocket {
    /// Collects event kinds until `done` holds or `milliseconds` pass; returns what it saw.
    func collectEvents(
        within milliseconds: Int,
        until done: (Set<MonitorEvent.Kind>) -> Bool
    ) throws -> [MonitorEvent] {
        let deadline = ContinuousClock.now + .milliseconds(milliseconds)
        var poller = Poller()
        _ = poller.add(socket)
        var events: [MonitorEvent] = []
        while !done(Set(events.map(\.kind))), ContinuousClock.now < deadline {
            _ = try poller.poll(timeoutMilliseconds: 50)
            while let event = try receiveEvent(dontWait: true) {
                events.append(event)
            }
        }
        return events
    }
}

/// A value shared with the threads a test starts.
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) {
        mutex = Mutex(value)
    }

    var value: Value { mutex.withLock { $0 } }

    func update(_ body: (inout Value) -> Void) {
        mutex.withLock { body(&$0) }
    }
}
