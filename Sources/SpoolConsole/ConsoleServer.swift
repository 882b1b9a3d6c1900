import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import Spool
import Synchronization

/// `spoold`'s HTTP listener: `/metrics`, `/healthz`, `/readyz`, the JSON admin API and the web
/// console (docs/http-api.md). A thin adapter: everything it shows or does goes through the SDK,
/// connected to the broker's own ZeroMQ endpoint, so it sees what any client sees (watermarks, lag,
/// access rules) and computes nothing a second way. Answers from the moment it starts; `/readyz`
/// and the API say "recovering" until ``markReady(client:endpoint:)``.
public final class ConsoleServer: Sendable {
    /// The listener's settings.
    public let configuration: ConsoleConfiguration
    private let metrics: ConsoleMetrics
    private let registry: PrometheusCollectorRegistry
    private let logger: Logger
    private let state: Mutex<State>

    private struct State {
        var facts: BrokerFacts
        var client: SpoolClient?
        var boundPort: Int?
        var task: Task<Void, Never>?
        var group: ServiceGroup?
    }

    /// Longest a `wait=` long-poll of the record browser may ask for.
    static let maxWaitMilliseconds = 30_000
    /// Most records one page of the record browser returns.
    static let maxPageRecords = 1000
    /// Most records a header filter scans for one page.
    static let maxScannedRecords = 10_000

    /// A listener serving `registry`'s metrics and `metrics`' history, describing the broker with `facts`.
    public init(configuration: ConsoleConfiguration, facts: BrokerFacts, metrics: ConsoleMetrics,
                registry: PrometheusCollectorRegistry, logger: Logger) {
        self.configuration = configuration
        self.metrics = metrics
        self.registry = registry
        self.logger = logger
        state = Mutex(State(facts: facts))
    }

    /// The port actually bound, once started.
    public var boundPort: Int? { state.withLock { $0.boundPort } }

    /// Binds the listener and serves in the background; returns the bound port. Throws a
    /// ``ConsoleError`` saying what to change when the address cannot be bound.
    @discardableResult
    public func start() async throws(ConsoleError) -> Int {
        let bound = AsyncStream<Result<Int, any Error>>.makeStream()
        let application = Application(
            router: router(),
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port), serverName: "spoold"),
            onServerRunning: { channel in bound.continuation.yield(.success(channel.localAddress?.port ?? 0)) },
            logger: logger
        )
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [application], logger: logger))
        let task = Task { [metrics] in
            await withTaskGroup { tasks in
                tasks.addTask {
                    do { try await group.run() } catch { bound.continuation.yield(.failure(error)) }
                    bound.continuation.finish()
                }
                tasks.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(ConsoleMetrics.sampleIntervalSeconds))
                        metrics.sample(now: Int64(Date().timeIntervalSince1970 * 1000))
                    }
                }
                _ = await tasks.next()
                tasks.cancelAll()
            }
        }
        state.withLock {
            $0.task = task
            $0.group = group
        }
        let address = "\(configuration.host):\(configuration.port)"
        for await result in bound.stream {
            switch result {
            case .success(let port):
                state.withLock { $0.boundPort = port }
                logger.info("HTTP listener up: metrics, health, admin API and console", metadata: [
                    "address": "http://\(configuration.host):\(port)/", "admin": "\(configuration.admin ? "on" : "off (read-only)")",
                    "token": "\(configuration.token == nil ? "none" : "required")",
                ])
                return port
            case .failure(let error):
                throw ConsoleError(.internalServerError, "cannot listen for HTTP on \(address): \(error); set http.listen to a free address (or http.listen: off)")
            }
        }
        throw ConsoleError(.internalServerError, "cannot listen for HTTP on \(address): the listener stopped during start-up")
    }

    /// From now on the API answers through `client`, connected to the broker listening on `endpoint`.
    public func markReady(client: SpoolClient, endpoint: String) {
        state.withLock {
            $0.client = client
            $0.facts.endpoint = endpoint
        }
    }

    /// Stops the listener (requests in flight finish) and closes the client.
    public func stop() async {
        let (group, task, client) = state.withLock { ($0.group, $0.task, $0.client) }
        await group?.triggerGracefulShutdown()
        await task?.value
        client?.close()
    }

    // MARK: Routes

    /// Every route of the listener.
    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: BrokerErrors())
        router.add(middleware: TokenCheck(token: configuration.token))
        for (path, asset) in ConsoleAssets.files {
            router.get(RouterPath(path)) { _, _ in
                Response(status: .ok, headers: [.contentType: asset.contentType, .cacheControl: "no-cache"],
                         body: ResponseBody(byteBuffer: ByteBuffer(bytes: asset.bytes)))
            }
        }
        router.get("healthz") { _, _ in try await self.health() }
        router.get("readyz") { _, _ in
            let ready = self.state.withLock { $0.client != nil }
            return try json(["status": ready ? "ready" : "recovering"], status: ready ? .ok : .serviceUnavailable)
        }
        router.get("metrics") { _, _ in
            var text: [UInt8] = []
            self.registry.emit(into: &text)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
        }
        let api = router.group("api")
        api.get("status") { _, _ in try json(try await self.status()) }
        api.get("history") { _, _ in
            try json(History(intervalSeconds: ConsoleMetrics.sampleIntervalSeconds, samples: self.metrics.samples))
        }
        api.get("topics") { _, _ in
            let (topics, refused) = try await self.describeTopics(try self.readyClient().topics())
            return try json(TopicList(topics: topics.map(TopicView.init), notAuthorized: refused))
        }
        api.get("topics/:topic") { _, context in
            try json(TopicView(try await self.readyClient().describeTopic(try context.parameters.require("topic"))))
        }
        api.get("topics/:topic/records") { request, context in
            let query = Dictionary(request.uri.queryParameters.map { (String($0.key), String($0.value)) }) { first, _ in first }
            return try json(try await self.records(of: try context.parameters.require("topic"), query: query))
        }
        api.get("groups") { _, _ in
            let groups = try await self.readyClient().groups().map { GroupRow(name: $0.name, state: "\($0.state)", memberCount: $0.memberCount) }
            return try json(["groups": groups])
        }
        api.get("groups/:group") { _, context in
            try json(GroupView(try await self.readyClient().describeGroup(try context.parameters.require("group"))))
        }
        api.post("groups/:group/reset") { request, context in
            var request = request
            let body = try await decodeBody(ResetRequest.self, from: &request)
            return try json(try await self.reset(group: try context.parameters.require("group"), body))
        }
        api.get("sagas/:id") { request, context in
            let id = try context.parameters.require("id")
            let since = try request.uri.queryParameters["since"].map { text throws(ConsoleError) in try integer(String(text), "since") }
            let steps = try await SagaTrace(client: try self.readyClient(), correlationID: id, since: since).steps()
            guard let first = steps.first else { throw ConsoleError(.notFound, "no event of saga '\(id)' found") }
            var previous = first.time
            let summaries = steps.map { step in
                defer { previous = step.time }
                return step.summary(previousTime: previous)
            }
            return try json(SagaView(correlationID: id, steps: summaries))
        }
        api.get("dead-letters") { _, _ in
            let topics = try await self.readyClient().topics().filter { $0.name.hasSuffix(".dlq") }.map {
                DeadLetterTopic(name: $0.name, origin: String($0.name.dropLast(".dlq".count)),
                                records: $0.partitions.reduce(0) { $0 + $1.latestOffset - $1.earliestOffset }, partitions: $0.partitions.count)
            }
            return try json(["topics": topics])
        }
        api.post("dead-letters/:topic/replay") { request, context in
            var request = request
            let body = try await decodeBody(ReplayRequest.self, from: &request)
            return try json(try await self.replay(deadLetters: try context.parameters.require("topic"), body))
        }
        return router
    }

    /// 200 when the broker loop answers a metadata request within 2 s (or recovery is still
    /// running: the process is alive); 503 otherwise. A full disk does not fail it.
    private func health() async throws -> Response {
        guard let client = state.withLock({ $0.client }) else { return try json(["status": "ok", "phase": "recovering"]) }
        let answered = await withTaskGroup(of: String?.self) { tasks in
            tasks.addTask {
                do throws(SpoolError) {
                    _ = try await client.topics(["spool-health-probe"])
                    return nil
                } catch {
                    return error.message
                }
            }
            tasks.addTask {
                try? await Task.sleep(for: .seconds(2))
                return "the broker loop did not answer within 2 s"
            }
            let first = await tasks.next() ?? nil
            tasks.cancelAll()
            return first
        }
        if let problem = answered { return try json(["status": "unresponsive", "error": problem], status: .serviceUnavailable) }
        return try json(["status": "ok"])
    }

    /// Each of `topics` the listener may describe, and the names of those the access rules keep from it.
    private func describeTopics(_ topics: [TopicInfo]) async throws -> (described: [TopicDescription], refused: [String]) {
        let client = try readyClient()
        var described: [TopicDescription] = []
        var refused: [String] = []
        for topic in topics {
            do throws(SpoolError) {
                described.append(try await client.describeTopic(topic.name))
            } catch {
                guard error.code == .notAuthorized else { throw error }
                refused.append(topic.name)
            }
        }
        return (described, refused)
    }

    private func readyClient() throws(ConsoleError) -> SpoolClient {
        guard let client = state.withLock({ $0.client }) else {
            throw ConsoleError(.serviceUnavailable, "the broker is still recovering its logs; try again shortly")
        }
        return client
    }

    private func status() async throws -> StatusView {
        let client = try readyClient()
        let facts = state.withLock { $0.facts }
        var refused: [StatusView.RefusedWrites] = []
        let topics = try await client.topics()
        // Only topics the broker's gauges say refuse writes are described (one request each),
        // unless the gauges are not there (metrics off): then every topic is.
        let suspects = metrics.topicsRefusingWrites.map { names in topics.filter { names.contains($0.name) } } ?? topics
        for topic in try await describeTopics(suspects).described {
            for partition in topic.partitions where !partition.writeError.isEmpty {
                refused.append(StatusView.RefusedWrites(topic: topic.name, partition: partition.partition, reason: partition.writeError))
            }
        }
        return StatusView(
            version: facts.version, endpoint: facts.endpoint, dataDirectory: facts.dataDirectory, fsync: facts.fsync, startedAt: facts.startedAt,
            admin: configuration.admin, ready: true, topics: topics.count, partitions: topics.reduce(0) { $0 + $1.partitions.count },
            connectedClients: metrics.gauge(ConsoleMetrics.Name.connectedClients).map { Int($0) },
            disk: StatusView.Disk(totalBytes: metrics.gauge(ConsoleMetrics.Name.diskTotal).map { Int64($0) },
                                  freeBytes: metrics.gauge(ConsoleMetrics.Name.diskFree).map { Int64($0) }),
            writesRefused: refused)
    }

    /// One page of the record browser (see docs/http-api.md for the parameters).
    private func records(of topic: String, query: [String: String]) async throws -> RecordPage {
        let client = try readyClient()
        let limit = try query["limit"].map { text throws(ConsoleError) in try integer(text, "limit", in: 1...Int64(Self.maxPageRecords)) } ?? 50
        let wait = try query["wait"].map { text throws(ConsoleError) in try integer(text, "wait", in: 0...Int64(Self.maxWaitMilliseconds)) } ?? 0
        let header = try query["header"].map { text throws(ConsoleError) -> (name: String, value: [UInt8]) in
            guard let equals = text.firstIndex(of: "=") else { throw ConsoleError(.badRequest, "header must be name=value, not '\(text)'") }
            return (String(text[..<equals]), Array(text[text.index(after: equals)...].utf8))
        }
        func passes(_ record: SpoolRecord) -> Bool {
            guard let (name, value) = header else { return true }
            return record.headers.contains { $0.name == name && $0.value == value }
        }
        if let key = query["key"] {
            let from = try query["offset"].map { text throws(ConsoleError) in try integer(text, "offset") } ?? 0
            let found = try await client.records(ofKey: Array(key.utf8), in: topic, from: from)
            let matching = found.records.filter(passes)
            let page = Array(matching.prefix(Int(limit)))
            let partition = page.first?.partition ?? found.records.first?.partition ?? 0
            let start = try await client.offset(of: topic, partition: partition, .earliest)
            let end = try await client.offset(of: topic, partition: partition, .latest)
            return RecordPage(records: page.map(RecordView.init), nextOffset: page.last.map { $0.offset + 1 } ?? end, logStartOffset: start, logEndOffset: end)
        }
        let partition = Int32(try query["partition"].map { text throws(ConsoleError) in try integer(text, "partition", in: 0...Int64(Int32.max)) } ?? 0)
        let logStart = try await client.offset(of: topic, partition: partition, .earliest)
        let logEnd = try await client.offset(of: topic, partition: partition, .latest)
        var next: Int64
        if let offset = query["offset"] {
            next = max(try integer(offset, "offset"), logStart)
        } else if let time = query["time"] {
            next = try await client.offset(of: topic, partition: partition, .timestamp(try milliseconds(time)))
        } else {
            let last = try query["last"].map { text throws(ConsoleError) in try integer(text, "last", in: 0...Int64(Self.maxPageRecords)) } ?? limit
            next = max(logStart, logEnd - last)
        }
        var page: [SpoolRecord] = []
        var scanned = 0
        var end = logEnd
        scan: while page.count < limit, scanned < Self.maxScannedRecords {
            let waiting = page.isEmpty && next >= end && wait > 0
            guard next < end || waiting else { break }
            let fetched = try await client.fetch(from: topic, partition: partition, offset: next, maxWait: waiting ? .milliseconds(wait) : .zero)
            end = fetched.logEndOffset
            for record in fetched.records where record.offset >= next {
                scanned += 1
                guard passes(record) else { continue }
                page.append(record)
                if page.count == limit {
                    next = record.offset + 1
                    break scan
                }
            }
            if waiting && fetched.nextOffset <= next { break }
            guard fetched.nextOffset > next else { break }
            next = fetched.nextOffset
        }
        return RecordPage(records: page.map(RecordView.init), nextOffset: next, logStartOffset: logStart, logEndOffset: end)
    }

    private func reset(group: String, _ body: ResetRequest) async throws -> ResetView {
        let client = try readyClient()
        if body.execute == true && !configuration.admin {
            throw ConsoleError(.forbidden, "the console is read-only: set http.admin: true in spoold.yaml to reset offsets (a dry run works without it)")
        }
        let target: OffsetResetTarget
        switch body.to {
        case "earliest": target = .earliest
        case "latest": target = .latest
        case "offset": target = .offset(try body.integerValue(minimum: 0))
        case "time": target = .timestamp(try milliseconds(body.value?.text ?? ""))
        case "shift": target = .shift(try body.integerValue(minimum: .min))
        default: throw ConsoleError(.badRequest, "\"to\" must be earliest, latest, offset, time or shift, not '\(body.to)'")
        }
        let plan = try await client.planOffsetReset(group: group, topic: body.topic, partition: body.partition, to: target)
        if body.execute == true {
            try await client.applyOffsetReset(group: group, plan)
            logger.notice("console reset a group's offsets", metadata: ["group": "\(group)", "topic": "\(body.topic)", "partitions": "\(plan.count)"])
        }
        return ResetView(plan: plan, executed: body.execute == true)
    }

    private func replay(deadLetters topic: String, _ body: ReplayRequest) async throws -> ReplayView {
        guard configuration.admin else {
            throw ConsoleError(.forbidden, "the console is read-only: set http.admin: true in spoold.yaml to replay dead letters")
        }
        guard topic.hasSuffix(".dlq") else { throw ConsoleError(.badRequest, "'\(topic)' is not a dead-letter topic (its name must end in .dlq)") }
        let client = try readyClient()
        let destination = body.to ?? String(topic.dropLast(".dlq".count))
        try SpoolClient.checkTopicName(destination)
        guard let source = try await client.topics([topic]).first else { throw ConsoleError(.notFound, "topic '\(topic)' does not exist") }
        let producer = try Producer(client: client, logger: logger)
        var copied = 0
        do {
            for partition in source.partitions {
                let start = max(body.fromOffset ?? partition.earliestOffset, partition.earliestOffset)
                for record in try await client.records(of: topic, partition: partition.partition, fromOffset: start) {
                    let copy = OutgoingRecord(replaying: record)
                    try await producer.enqueue(to: destination, key: copy.key, value: copy.value, headers: copy.headers, timestamp: copy.timestamp)
                    copied += 1
                }
            }
            try await producer.close()
        } catch {
            try? await producer.close()
            throw error
        }
        logger.notice("console replayed dead letters", metadata: ["from": "\(topic)", "to": "\(destination)", "records": "\(copied)"])
        return ReplayView(copied: copied, to: destination)
    }
}

// MARK: Request and reply bodies

private struct History: Encodable {
    var intervalSeconds: Int
    var samples: [ConsoleMetrics.Sample]
}

private struct TopicList: Encodable {
    var topics: [TopicView]
    /// Topics the access rules do not let the listener describe.
    var notAuthorized: [String]
}

private struct GroupRow: Encodable {
    var name: String
    var state: String
    var memberCount: Int
}

private struct SagaView: Encodable {
    var correlationID: String
    var steps: [SagaTraceStep.Summary]
}

private struct DeadLetterTopic: Encodable {
    var name: String
    var origin: String
    var records: Int64
    var partitions: Int
}

/// `value` of a reset: a number (offset, shift, ms) or a text (ISO 8601 time).
private enum ResetValue: Decodable {
    case number(Int64), text(String)

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int64.self) { self = .number(number) } else { self = .text(try container.decode(String.self)) }
    }

    var text: String {
        switch self {
        case .number(let number): String(number)
        case .text(let text): text
        }
    }
}

private struct ResetRequest: Decodable {
    var topic: String
    var partition: Int32?
    var to: String
    var value: ResetValue?
    var execute: Bool?

    func integerValue(minimum: Int64) throws(ConsoleError) -> Int64 {
        guard let value else { throw ConsoleError(.badRequest, "\"to\": \"\(to)\" needs a \"value\"") }
        return try integer(value.text, "value", in: minimum...Int64.max)
    }
}

private struct ResetView: Encodable {
    var plan: [OffsetResetStep]
    var executed: Bool
}

private struct ReplayRequest: Decodable {
    var to: String?
    var fromOffset: Int64?
}

private struct ReplayView: Encodable {
    var copied: Int
    var to: String
}

// MARK: Helpers

/// An error the API answers with its status and `{"error": message}`.
public struct ConsoleError: HTTPResponseError, CustomStringConvertible {
    /// The HTTP status it answers with.
    public let status: HTTPResponse.Status
    /// What went wrong and what to do.
    public let message: String

    init(_ status: HTTPResponse.Status, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { message }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        try json(["error": message], status: status)
    }
}

/// Answers the SDK's errors with the status that fits their code and `{"error": message}`:
/// 404 for an unknown topic or partition, 409 for a group with live members, 403 for a refusal
/// of the access rules, 400 for a bad argument, 503 when the broker does not answer, else 500.
private struct BrokerErrors<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as SpoolError {
            let status: HTTPResponse.Status = switch error.code {
            case .unknownTopic, .unknownPartition: .notFound
            case .groupNotEmpty, .topicAlreadyExists, .keyConflict: .conflict
            case .notAuthorized: .forbidden
            case .invalidArgument, .invalidTopicName, .invalidRequest, .offsetOutOfRange, .recordTooLarge: .badRequest
            case .timedOut, .connectionFailed, .connectionLost, .brokerShuttingDown: .serviceUnavailable
            default: .internalServerError
            }
            throw ConsoleError(status, error.message)
        }
    }
}

/// Lets through `/`, `/assets/*`, `/healthz` and `/readyz`; the rest needs the bearer token when one is set.
private struct TokenCheck<Context: RequestContext>: RouterMiddleware {
    let token: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard let token, path.hasPrefix("/api") || path == "/metrics" else { return try await next(request, context) }
        let presented = request.headers[.authorization].map { Array($0.utf8) } ?? []
        let expected = Array("Bearer \(token)".utf8)
        // Compared in time that does not depend on where they differ.
        guard presented.count == expected.count, zip(presented, expected).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 else {
            throw ConsoleError(.unauthorized, "this listener needs its token: send 'Authorization: Bearer <token>' (http.token.file in spoold.yaml)")
        }
        return try await next(request, context)
    }
}

private let encoder: JSONEncoder = {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return encoder
}()

/// A JSON response.
private func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
             body: ResponseBody(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
}

/// The request's JSON body (at most 64 KiB) as `type`, or a 400 saying what was expected.
private func decodeBody<T: Decodable>(_ type: T.Type, from request: inout Request) async throws -> T {
    let body = try await request.collectBody(upTo: 64 << 10)
    do {
        return try JSONDecoder().decode(type, from: Data(buffer: body))
    } catch {
        throw ConsoleError(.badRequest, "the body is not the JSON this request takes (see docs/http-api.md): \(error)")
    }
}

private func integer(_ text: String, _ name: String, in range: ClosedRange<Int64> = 0...Int64.max) throws(ConsoleError) -> Int64 {
    guard let value = Int64(text), range.contains(value) else {
        throw ConsoleError(.badRequest, "\(name) must be an integer in \(range.lowerBound)...\(range.upperBound), not '\(text)'")
    }
    return value
}

/// Milliseconds since the epoch, or an ISO 8601 time.
private func milliseconds(_ text: String) throws(ConsoleError) -> Int64 {
    if let value = Int64(text) { return value }
    if let date = try? Date(String(text), strategy: .iso8601) { return Int64(date.timeIntervalSince1970 * 1000) }
    throw ConsoleError(.badRequest, "a time must be milliseconds since the epoch or ISO 8601 (2026-12-05T10:00:00Z), not '\(text)'")
}
