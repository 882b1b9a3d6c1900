import Foundation
import Logging
@_spi(Testing) import SpoolBroker
import SpoolStorage
@_spi(Testing) import SpoolTesting
import SpoolWire
import Testing

// MARK: Replies

struct BrokerTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One reply the broker decided to send, with its header decoded and any log slice read out.
struct Reply {
    let client: ClientID
    let header: FrameHeader
    /// The frames after the header; a log slice as its bytes.
    let frames: [[UInt8]]
    /// Whether each frame after the header was a log slice.
    let frameWasSlice: [Bool]

    /// The body of a successful reply, decoded as `M`.
    func body<M: WireMessage>(_: M.Type) throws -> M {
        guard header.errorCode == .none else {
            throw BrokerTestError("expected a \(M.self), got error \(header.errorCode): \(String(describing: try? error().message))")
        }
        guard header.opCode == M.opCode else { throw BrokerTestError("reply op \(header.opCode), expected \(M.opCode)") }
        guard let first = frames.first else { throw BrokerTestError("reply has no body frame") }
        return try M.decode(first)
    }

    /// The error body of a failed reply.
    func error() throws -> ErrorResponse {
        guard header.errorCode != .none else { throw BrokerTestError("expected an error reply, got success") }
        guard frames.count == 1 else { throw BrokerTestError("error reply has \(frames.count) body frames") }
        return try frames[0].withUnsafeBytes { try ErrorResponse.decode($0) }
    }

    /// The batches of a fetch reply, each validated, with the records they hold.
    func fetchedBatches() throws -> [(bytes: [UInt8], records: [Record])] {
        guard frames.count == 2 else { throw BrokerTestError("fetch reply has \(frames.count) frames after the header") }
        let data = frames[1]
        var batches: [(bytes: [UInt8], records: [Record])] = []
        var position = 0
        while position < data.count {
            let rest = Array(data[position...])
            let header = try rest.withUnsafeBytes { try RecordBatch.readHeader($0) }
            guard header.totalSize <= rest.count else { throw BrokerTestError("fetch reply ends inside a batch") }
            let batch = Array(rest[..<header.totalSize])
            let records = try batch.withUnsafeBytes { buffer in
                try RecordBatch.validate(buffer)
                return try RecordBatch.records(in: buffer)
            }
            batches.append((batch, records))
            position += header.totalSize
        }
        return batches
    }

    /// The records of a fetch reply.
    func fetchedRecords() throws -> [Record] { try fetchedBatches().flatMap(\.records) }

    static func decode(_ actions: [BrokerAction]) throws -> [Reply] {
        try actions.map { action in
            guard case .reply(let client, let frames) = action else { throw BrokerTestError("unknown action") }
            var bytes: [[UInt8]] = []
            var slices: [Bool] = []
            for frame in frames {
                switch frame {
                case .bytes(let value):
                    bytes.append(value)
                    slices.append(false)
                case .logSlices(let parts):
                    let length = parts.reduce(0) { $0 + $1.length }
                    var buffer = [UInt8](repeating: 0, count: length)
                    let count = try buffer.withUnsafeMutableBytes { target in try LogSlice.read(parts, into: target) }
                    guard count == length else { throw BrokerTestError("slice read \(count) of \(length) bytes") }
                    bytes.append(buffer)
                    slices.append(true)
                }
            }
            guard let headerBytes = bytes.first else { throw BrokerTestError("reply without frames") }
            let header = try headerBytes.withUnsafeBytes { try FrameHeader.decode($0) }
            guard header.isReply, header.version == FrameHeader.currentVersion else {
                throw BrokerTestError("reply header is not a v1 reply: \(header)")
            }
            return Reply(client: client, header: header, frames: Array(bytes.dropFirst()), frameWasSlice: Array(slices.dropFirst()))
        }
    }
}

// MARK: Harness

/// A broker on a temporary directory with a test-controlled clock, and helpers to talk to it
/// in frames, as the transport would.
final class Harness {
    let directory: TemporaryDirectory
    private(set) var configuration: BrokerConfiguration
    private var current: Broker?
    /// The broker under test.
    var broker: Broker { current! }
    /// Monotonic milliseconds handed to the broker.
    var now: Int64 = 5_000_000
    var rng: SeededGenerator
    let client = ClientID(Array("client-1".utf8))

    /// Every line the brokers of this harness logged.
    let log: RecordingLogHandler
    private let brokerLogger: Logger
    /// A logger that drops everything, for brokers a test opens itself.
    static let logger = Logger(label: "spool.broker.tests", factory: { _ in SwiftLogNoOpLogHandler() })
    /// The seam every file write and sync goes through (a ``FaultInjector`` that fails nothing
    /// until told to).
    let faults = FaultInjector()

    init(_ name: String = #function, fsync: FsyncPolicy = .never,
         configure: (inout BrokerConfiguration) -> Void = { _ in }) throws {
        rng = SeededGenerator.logged(name)
        directory = try TemporaryDirectory(prefix: "spool-broker-tests")
        var configuration = BrokerConfiguration(dataDirectory: directory.appending("data"), log: LogConfiguration(fsync: fsync))
        configure(&configuration)
        self.configuration = configuration
        (log, brokerLogger) = RecordingLogHandler.logger(label: "spool.broker.tests")
        current = try Broker(configuration: configuration, logger: brokerLogger, io: faults.io)
    }

    var policy: FsyncPolicy { configuration.log.fsync }

    private var usedCorrelationIDs: Set<UInt64> = []

    /// A random correlation id, sometimes at the edges, never one used before by this harness.
    func correlationID() -> UInt64 {
        while true {
            let id: UInt64 = switch rng.int(0...9) {
            case 0: 0
            case 1: .max
            default: rng.next()
            }
            if usedCorrelationIDs.insert(id).inserted { return id }
        }
    }

    // MARK: Sending

    /// Hands `frames` to the broker and decodes what it answers at once.
    func send(_ frames: [[UInt8]], from client: ClientID? = nil) throws -> [Reply] {
        try Reply.decode(broker.handle(client: client ?? self.client, frames: frames, now: now))
    }

    /// Sends a request with body `body` (and `batch` for produces) and returns its correlation id and the replies.
    func request(_ body: some WireMessage, batch: [UInt8]? = nil, opCode: OpCode? = nil, version: UInt8 = FrameHeader.currentVersion)
        throws -> (id: UInt64, replies: [Reply]) {
        let id = correlationID()
        let header = FrameHeader(version: version, opCode: opCode ?? type(of: body).opCode, correlationID: id)
        return (id, try send([header.encoded(), body.encoded()] + (batch.map { [$0] } ?? [])))
    }

    /// Sends a request that must be answered at once with exactly one successful reply of type `R`.
    func call<R: WireMessage>(_ body: some WireMessage, batch: [UInt8]? = nil, _: R.Type) throws -> R {
        let (id, replies) = try request(body, batch: batch)
        let reply = try #require(replies.only, "expected one reply, got \(replies.count)")
        try #require(reply.header.correlationID == id)
        #expect(reply.client == client)
        return try reply.body(R.self)
    }

    /// Sends frames that must be answered with exactly one error reply carrying `code` and `id`.
    @discardableResult
    func expectError(_ frames: [[UInt8]], id: UInt64, opCode: OpCode, code: ErrorCode,
                     sourceLocation: SourceLocation = #_sourceLocation) throws -> ErrorResponse {
        let replies = try send(frames)
        let reply = try #require(replies.only, "expected one reply, got \(replies.count)", sourceLocation: sourceLocation)
        #expect(reply.header.correlationID == id, sourceLocation: sourceLocation)
        #expect(reply.header.opCode == opCode, sourceLocation: sourceLocation)
        #expect(reply.header.errorCode == code, "\(String(describing: try? reply.error().message))", sourceLocation: sourceLocation)
        let error = try reply.error()
        #expect(!error.message.isEmpty, sourceLocation: sourceLocation)
        return error
    }

    /// Sends `body` that must fail with `code`.
    @discardableResult
    func expectError(_ body: some WireMessage, batch: [UInt8]? = nil, code: ErrorCode,
                     sourceLocation: SourceLocation = #_sourceLocation) throws -> ErrorResponse {
        let id = correlationID()
        let header = FrameHeader(opCode: type(of: body).opCode, correlationID: id)
        return try expectError([header.encoded(), body.encoded()] + (batch.map { [$0] } ?? []), id: id,
                               opCode: type(of: body).opCode, code: code, sourceLocation: sourceLocation)
    }

    // MARK: Operations

    /// Creates `topic` with `partitions` partitions (a fetch or an offset lookup never creates one).
    func createTopic(_ topic: String, partitions: Int32 = 1) throws {
        _ = try call(CreateTopicRequest(name: topic, partitions: partitions), CreateTopicResponse.self)
    }

    /// Produces `batch` and returns its acknowledgement. Under `fsync: always` it runs the sync
    /// work (by reporting the work's end offset as synced) to get the acknowledgement.
    @discardableResult
    func produce(_ topic: String, _ batch: [UInt8]) throws -> ProduceResponse { try produce(topic, 0, batch) }

    /// `synced`: the batch was synced before (a retry of a stored batch), so the answer may come at once.
    @discardableResult
    func produce(_ topic: String, _ partition: Int32, _ batch: [UInt8], synced: Bool = false) throws -> ProduceResponse {
        let (id, replies) = try request(ProduceRequest(topic: topic, partition: partition), batch: batch)
        var all = replies
        if case .always = policy, !synced {
            #expect(replies.isEmpty, "under fsync: always nothing is answered before the sync")
            for (key, work) in broker.takeSyncWork(now: now) {
                all += try Reply.decode(broker.syncCompleted(key, result: .success(work.endOffset), now: now))
            }
        }
        let ack = try #require(all.first { $0.header.correlationID == id && $0.header.opCode == .produce })
        return try ack.body(ProduceResponse.self)
    }

    /// Fetches once without waiting.
    func fetch(_ topic: String, _ partition: Int32 = 0, from offset: Int64, maxBytes: UInt32 = 1 << 20)
        throws -> (response: FetchResponse, reply: Reply) {
        let (id, replies) = try request(FetchRequest(topic: topic, partition: partition, offset: offset, maxBytes: maxBytes))
        let reply = try #require(replies.only, "a fetch without wait is answered at once")
        #expect(reply.header.correlationID == id)
        return (try reply.body(FetchResponse.self), reply)
    }

    /// Every record from `offset` to the visible end, fetched in steps of at most `maxBytes`.
    func fetchAll(_ topic: String, _ partition: Int32 = 0, from offset: Int64 = 0, maxBytes: UInt32 = 1 << 20) throws -> [Record] {
        var offset = offset
        var records: [Record] = []
        for _ in 0..<10_000 {
            let (response, reply) = try fetch(topic, partition, from: offset, maxBytes: maxBytes)
            let fetched = try reply.fetchedRecords().filter { $0.offset >= offset }
            guard let last = fetched.last else {
                #expect(offset == response.logEndOffset, "an empty fetch reply below the end")
                return records
            }
            #expect(fetched.map(\.offset) == Array(offset...last.offset), "offsets are dense from the one asked for")
            records += fetched
            offset = last.offset + 1
        }
        throw BrokerTestError("fetchAll did not reach the end")
    }

    func latestOffset(_ topic: String, _ partition: Int32 = 0) throws -> Int64 {
        try call(ListOffsetsRequest(topic: topic, partition: partition, spec: .latest), ListOffsetsResponse.self).offset
    }

    /// A batch of 1...`maxRecords` random records with timestamps around `timestamp`, and the records.
    func randomBatch(maxRecords: Int = 5, maxValue: Int = 200, timestamp: Int64 = 1_700_000_000_000) -> ([UInt8], [Record]) {
        var builder = RecordBatchBuilder()
        var records: [Record] = []
        for _ in 0..<rng.int(1...maxRecords) {
            let key: [UInt8]? = rng.int(0...2) == 0 ? nil : rng.bytes(rng.int(0...16))
            let headers = rng.int(0...1) == 0 ? [] : [RecordHeader(name: "trace", value: rng.bytes(8))]
            let record = Record(timestamp: timestamp + Int64(rng.int(-10...10)), key: key,
                                value: rng.bytes(rng.int(0...maxValue)), headers: headers)
            builder.append(record)
            records.append(record)
        }
        return (builder.finish(), records)
    }

    // MARK: Lifecycle

    /// Shuts the broker down as the server does: answers parked fetches, syncs everything
    /// (reported as successful), acknowledges what the syncs cover, closes. Returns every reply.
    @discardableResult
    func shutDown() throws -> [Reply] {
        let (actions, work) = broker.beginShutdown()
        var replies = try Reply.decode(actions)
        for (key, item) in work {
            replies += try Reply.decode(broker.syncCompleted(key, result: .success(item.endOffset), now: now))
        }
        replies += try Reply.decode(broker.close())
        return replies
    }

    /// Shuts down and opens a new broker on the same directory (with `configure` applied).
    func reopen(configure: (inout BrokerConfiguration) -> Void = { _ in }) throws {
        try shutDown()
        configure(&configuration)
        current = try Broker(configuration: configuration, logger: brokerLogger, io: faults.io)
    }

    /// Drops the broker without shutting it down or closing it (as a kill -9 would, except that
    /// the page cache keeps every write) and opens a new one on the same directory.
    func reopenAfterCrash() throws {
        current = nil
        current = try Broker(configuration: configuration, logger: brokerLogger, io: faults.io)
    }

    deinit { _ = current?.close() }
}

extension Collection {
    /// The single element, or nil if there are none or several.
    var only: Element? { count == 1 ? first : nil }
}

/// `records` with offsets from `base`.
func numbered(_ records: [Record], from base: Int64) -> [Record] {
    records.enumerated().map { index, record in
        var record = record
        record.offset = base + Int64(index)
        return record
    }
}
