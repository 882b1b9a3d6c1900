import Foundation
import Spool
import Synchronization

extension SpoolClient {
    /// Every record of `topic`/`partition` from `offset` up to the end the broker reports now,
    /// read with plain fetches (no waiting). Throws if a fetch comes back empty before the end.
    public func readToEnd(of topic: String, partition: Int32 = 0, from offset: Int64 = 0) async throws -> [SpoolRecord] {
        let end = try await self.offset(of: topic, partition: partition, .latest)
        var records: [SpoolRecord] = []
        var next = offset
        while next < end {
            let fetched = try await fetch(from: topic, partition: partition, offset: next)
            guard fetched.nextOffset > next else {
                throw SpoolError(.protocolViolation, "fetch at \(next) of \(topic)/\(partition) returned nothing before the end \(end)")
            }
            records += fetched.records
            next = fetched.nextOffset
        }
        return records
    }
}

/// The differences between `records` and what was `expected` at offsets `firstOffset`, … (keys,
/// values, headers, timestamps where one was set, and the topic if given), one line each;
/// empty when they match exactly.
public func recordDifferences(_ records: [SpoolRecord], expected: [OutgoingRecord], firstOffset: Int64 = 0,
                              topic: String? = nil) -> [String] {
    var differences: [String] = []
    if records.count != expected.count { differences.append("got \(records.count) records, expected \(expected.count)") }
    for (index, (record, sent)) in zip(records, expected).enumerated() {
        let offset = firstOffset + Int64(index)
        let same = record.offset == offset && record.key == sent.key && record.value == sent.value
            && record.headers == sent.headers && (sent.timestamp.map { $0 == record.timestamp } ?? true)
            && (topic.map { $0 == record.topic } ?? true)
        if !same { differences.append("record #\(index) differs: got \(record), sent \(sent) at offset \(offset)") }
    }
    return differences
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
public func eventually(timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

/// Records gathered by a consumer task, readable from the test while it runs.
public final class RecordCollector: Sendable {
    private let storage = Mutex<[SpoolRecord]>([])

    public init() {}

    /// Everything collected so far, in arrival order.
    public var records: [SpoolRecord] { storage.withLock { $0 } }
    /// How many records were collected.
    public var count: Int { storage.withLock { $0.count } }
    /// Adds one record.
    public func append(_ record: SpoolRecord) { storage.withLock { $0.append(record) } }
}

/// A loopback TCP port that was free a moment ago (bound to port 0, then closed): for a
/// broker to listen on, or for a client to find nothing listening.
public func freeLoopbackPort() throws -> Int {
    try bindLoopback(port: 0)
}

/// Whether a server could listen on 127.0.0.1:`port` now (nothing listens there; a port in
/// TIME_WAIT counts as free, as it does for servers that set `SO_REUSEADDR`).
public func loopbackPortIsFree(_ port: Int) -> Bool {
    (try? bindLoopback(port: port)) != nil
}

/// Binds a TCP socket to 127.0.0.1:`port` (0: any free port) with `SO_REUSEADDR`, closes it,
/// and returns the port it got; throws the bind error.
private func bindLoopback(port: Int) throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    defer { close(descriptor) }
    var reuse: Int32 = 1
    setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let result = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(descriptor, pointer, length) == 0 ? getsockname(descriptor, pointer, &length) : -1
        }
    }
    guard result == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Runs `executable` with `arguments` to its end; returns its exit status and its output
/// (standard output and standard error together).
public func runToEnd(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, text)
}
