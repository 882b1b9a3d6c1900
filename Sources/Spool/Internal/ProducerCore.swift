import Dispatch
import Foundation
import Logging
import Synchronization
import SpoolWire

/// A task executor that runs jobs one at a time, in the order they were enqueued, on a serial
/// dispatch queue: the producer's loop and its timers run here, off the caller's executor.
/// (Batches keep their order because they are queued on the connection under the state lock.)
final class SerialTaskExecutor: TaskExecutor {
    private let queue: DispatchQueue

    init(label: String) { queue = DispatchQueue(label: label) }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// The working part of a ``Producer``: its state behind one lock, and the loop that closes,
/// sends and retries batches. Callers buffer records under the lock (and, without linger, send
/// what may leave at once); the loop (one task on a ``SerialTaskExecutor``, started with the
/// first record) does everything that waits. Answers are acted on by the connection's I/O
/// thread. It holds no reference to the ``Producer``, so dropping the producer closes it.
final class ProducerCore: Sendable {
    let client: SpoolClient
    let configuration: ProducerConfiguration
    let state: Mutex<ProducerState>
    private let logger: Logger
    private let executor = SerialTaskExecutor(label: "spool-producer")
    private let nextWaiterID = Atomic<UInt64>(1)
    /// Above this estimate a record's exact size is checked against the client's batch limit.
    private let exactSizeThreshold: Int

    init(client: SpoolClient, configuration: ProducerConfiguration, logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.logger = logger
        state = Mutex(ProducerState(configuration: configuration))
        exactSizeThreshold = client.configuration.maxBatchBytes - RecordBatch.headerSize
    }

    // MARK: Buffering

    /// Buffers one record: at once when there is room, else after waiting (in call order).
    @inline(__always)
    nonisolated(nonsending) func enqueue(topic: String, partition: Int32?, key: [UInt8]?, value: [UInt8], headers: [RecordHeader], timestamp: Int64?) async throws(SpoolError) {
        let timestamp = timestamp ?? Self.wallClockMilliseconds()
        let size = try checkedSize(topic: topic, key: key, value: value, headers: headers)
        var attempt: ProducerState.AppendAttempt = .unknownTopic
        var actions = ProducerActions()
        var refused: [(Transmission, SpoolError)] = []
        for _ in 0..<2 {
            attempt = state.withLock { state in
                let attempt = state.tryAppend(topic: topic, partition: partition, key: key, value: value, headers: headers,
                                              timestamp: timestamp, size: size, actions: &actions)
                if case .appended = attempt {
                    if state.loopTask == nil { startLoop(&state) }
                    refused = queue(state.sendWithoutWaiting(actions: &actions))
                }
                return attempt
            }
            guard case .unknownTopic = attempt else { break }
            try await resolve(topic)
        }
        if !actions.isEmpty { perform(actions) }
        answerRefused(refused)
        switch attempt {
        case .appended:
            return
        case .failed(let error):
            throw error
        case .unknownTopic, .mustWait:
            let index = try await topicIndex(topic)
            let result: Result<Void, SpoolError> = await waitForRoom { id, continuation in
                BlockedRecord(id: id, topicIndex: index, partition: partition, key: key, value: value, headers: headers,
                              timestamp: timestamp, size: size, waiter: .enqueue(continuation))
            }
            try result.get()
        }
    }

    /// Buffers one record and waits for its acknowledgement.
    nonisolated(nonsending) func send(topic: String, partition: Int32?, key: [UInt8]?, value: [UInt8], headers: [RecordHeader], timestamp: Int64?) async throws(SpoolError) -> PublishResult {
        let timestamp = timestamp ?? Self.wallClockMilliseconds()
        let size = try checkedSize(topic: topic, key: key, value: value, headers: headers)
        let index = try await topicIndex(topic)
        let result: Result<PublishResult, SpoolError> = await waitForRoom { id, continuation in
            BlockedRecord(id: id, topicIndex: index, partition: partition, key: key, value: value, headers: headers,
                          timestamp: timestamp, size: size, waiter: .send(continuation))
        }
        return try result.get()
    }

    /// Buffers `records` as one conditional batch of their own and waits for its acknowledgement.
    nonisolated(nonsending) func send(topic: String, key: [UInt8], records: [OutgoingRecord], condition: KeyCondition) async throws(SpoolError) -> PublishResult {
        guard !records.isEmpty else { throw SpoolError(.invalidArgument, "a conditional send needs at least one record") }
        let timestamp = Self.wallClockMilliseconds()
        var builder = RecordBatchBuilder()
        for record in records {
            builder.append(timestamp: record.timestamp ?? timestamp, key: record.key ?? key, value: record.value, headers: record.headers)
        }
        let size = builder.finish().count
        guard size <= client.configuration.maxBatchBytes else {
            throw SpoolError(.recordTooLarge, "a conditional batch of \(records.count) records for \(topic) is \(size) bytes encoded; the limit is \(client.configuration.maxBatchBytes) bytes (ClientConfiguration.maxBatchBytes)")
        }
        let index = try await topicIndex(topic)
        let result: Result<PublishResult, SpoolError> = await withCheckedContinuation { continuation in
            var actions = ProducerActions()
            state.withLock { state in
                state.appendConditional(topicIndex: index, key: key, records: records, timestamp: timestamp, condition: condition,
                                        waiter: continuation, actions: &actions)
                if state.loopTask == nil, !state.closing { startLoop(&state) }
            }
            perform(actions)
        }
        return try result.get()
    }

    /// Hands a record to the state, which buffers it now or when there is room, and waits for the
    /// continuation (resumed when buffered for `enqueue`, when acknowledged for `send`). A cancelled
    /// task stops waiting for room; once buffered, the record is delivered regardless.
    private func waitForRoom<T: Sendable>(
        _ makeRecord: @Sendable (UInt64, CheckedContinuation<Result<T, SpoolError>, Never>) -> BlockedRecord
    ) async -> Result<T, SpoolError> {
        let id = nextWaiterID.wrappingAdd(1, ordering: .relaxed).oldValue
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, SpoolError>, Never>) in
                var actions = ProducerActions()
                let cancelled = Task.isCancelled  // then onCancel ran already, before the record was queued
                let refused = state.withLock { state in
                    state.appendOrBlock(makeRecord(id, continuation), waitUnlessCancelled: cancelled, actions: &actions)
                    if state.loopTask == nil, !state.closing { startLoop(&state) }
                    return queue(state.sendWithoutWaiting(actions: &actions))
                }
                perform(actions)
                answerRefused(refused)
            }
        } onCancel: {
            var actions = ProducerActions()
            state.withLock { $0.cancelBlocked(id: id, actions: &actions) }
            perform(actions)
        }
    }

    /// The record's size estimate, after failing a record that can never fit in a batch.
    @inline(__always)
    private func checkedSize(topic: String, key: [UInt8]?, value: [UInt8], headers: [RecordHeader]) throws(SpoolError) -> Int {
        let size = RecordSize.upperBound(key: key, value: value, headers: headers)
        if size > exactSizeThreshold {
            let exact = RecordSize.loneBatch(key: key, value: value, headers: headers)
            let limit = client.configuration.maxBatchBytes
            guard exact <= limit else {
                throw SpoolError(.recordTooLarge, "record for \(topic) is \(exact) bytes encoded (batch header included); the limit is \(limit) bytes (ClientConfiguration.maxBatchBytes)")
            }
        }
        return size
    }

    // MARK: Topics

    private func topicIndex(_ topic: String) async throws(SpoolError) -> Int {
        if let index = state.withLock({ $0.topicIndex[topic] }) { return index }
        return try await resolve(topic)
    }

    /// Looks up the topic's partition count (creating the topic if the broker auto-creates
    /// topics) and registers it, retrying retriable failures until the delivery timeout.
    @discardableResult
    private func resolve(_ topic: String) async throws(SpoolError) -> Int {
        try SpoolClient.checkTopicName(topic)
        let clock = ContinuousClock()
        let deadline = clock.now + configuration.deliveryTimeout
        var backoff = Backoff(initial: configuration.retryBackoff, maximum: configuration.maxRetryBackoff)
        var attempts = 0
        while true {
            attempts += 1
            switch await partitionCount(of: topic, until: deadline) {
            case .success(let count):
                return state.withLock { $0.addTopic(topic, partitionCount: count) }
            case .failure(let error) where error.isRetriable:
                let wait = backoff.next()
                guard clock.now + wait < deadline else {
                    throw SpoolError(.timedOut, "no metadata for topic \(topic) within the delivery timeout of \(configuration.deliveryTimeout) (\(attempts) attempts; last error: \(error.code): \(error.message))",
                                     cause: error)
                }
                do {
                    try await Task.sleep(for: wait)
                } catch {
                    throw SpoolError(.cancelled, "cancelled while waiting for the metadata of topic \(topic)")
                }
            case .failure(let error):
                throw error
            }
        }
    }

    /// The topic's partition count, or a retriable `timedOut` if no answer comes by `deadline`.
    private func partitionCount(of topic: String, until deadline: ContinuousClock.Instant) async -> Result<Int32, SpoolError> {
        await withTaskGroup(of: Result<Int32, SpoolError>?.self) { group in
            group.addTask { await self.lookUpPartitionCount(of: topic) }
            group.addTask {
                try? await Task.sleep(until: deadline, clock: .continuous)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            if let first { return first }
            if Task.isCancelled { return .failure(SpoolError(.cancelled, "cancelled while waiting for the metadata of topic \(topic)")) }
            return .failure(SpoolError(.timedOut, "no answer to the metadata request for topic \(topic) from \(client.endpoint)"))
        }
    }

    /// The topic's partition count from the client's one metadata cache (see
    /// ``SpoolClient/partitionCount(of:)``), which `publish` uses too.
    private func lookUpPartitionCount(of topic: String) async -> Result<Int32, SpoolError> {
        do {
            return .success(try await client.partitionCount(of: topic))
        } catch {
            return .failure(error)
        }
    }

    // MARK: Flush and close

    func flush() async throws(SpoolError) {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            var actions = ProducerActions()
            state.withLock { $0.flush(continuation, actions: &actions) }
            perform(actions)
        }
        if let failure = state.withLock({ $0.takeFailure() }) { throw failure }
    }

    /// Stops accepting records; the loop sends what is buffered and ends.
    func beginClose() {
        var actions = ProducerActions()
        state.withLock { $0.beginClose(actions: &actions) }
        perform(actions)
    }

    func close() async throws(SpoolError) {
        beginClose()
        if let task = state.withLock({ $0.loopTask }) { await task.value }
        if let failure = state.withLock({ $0.takeFailure() }) { throw failure }
    }

    // MARK: The loop

    private func startLoop(_ state: inout ProducerState) {
        state.loopTask = Task(executorPreference: executor) { [self] in await run() }
    }

    /// Looks at the state whenever woken or due, sends what it decided, and sleeps.
    private func run() async {
        await withDiscardingTaskGroup { group in
            var timers: [UInt64] = []
            while true {
                let now = MonotonicClock.now()
                let (plan, refused) = state.withLock { state in
                    let plan = state.plan(now: now)
                    return (plan, queue(plan.transmissions))
                }
                perform(plan.actions)
                answerRefused(refused)
                if plan.exit { break }
                if plan.requestIdentity { group.addTask { await self.requestIdentity() } }
                timers.removeAll { $0 <= now }
                if let deadline = plan.deadline, !timers.contains(where: { $0 <= deadline }) {
                    timers.append(deadline)
                    group.addTask {
                        let now = MonotonicClock.now()
                        if deadline > now { try? await Task.sleep(nanoseconds: deadline - now) }
                        self.wake()
                    }
                }
                await waitForWake()
            }
            group.cancelAll()  // sleeping timers
        }
    }

    private func waitForWake() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state in
                if state.wakePending {
                    state.wakePending = false
                    return true
                }
                state.loopWaiter = LoopWaiter(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    private func wake() {
        var actions = ProducerActions()
        state.withLock { $0.wakeLoop(&actions) }
        perform(actions)
    }

    /// Queues each batch on the client's connection, in order; called under the state lock (by
    /// the loop, and by a caller for what ``ProducerState/sendWithoutWaiting(actions:)`` lets
    /// leave at once), so batches of one partition leave in the order of their sequences whichever
    /// thread sends them. The answer goes to the state on the connection's I/O thread, in the
    /// wake-up that received it (a waiting `send` is resumed from there, with no task between).
    /// Returns the transmissions a closed client refused, with its error, to answer once the
    /// lock is released.
    private func queue(_ transmissions: [Transmission]) -> [(Transmission, SpoolError)] {
        transmissions.compactMap { transmission in
            client.send(.produce, [transmission.requestBody, transmission.batch]) { [self] reply in
                answered(transmission, reply.flatMap { reply in Result { () throws(SpoolError) in try client.decode(ProduceResponse.self, reply) } })
            }.map { (transmission, $0) }
        }
    }

    /// Hands the answer to one send to the state and performs what it decides.
    private func answered(_ transmission: Transmission, _ result: Result<ProduceResponse, SpoolError>) {
        let now = MonotonicClock.now()
        let actions = state.withLock { $0.transmitted(slot: transmission.slot, batchID: transmission.batchID, result: result, now: now) }
        perform(actions)
    }

    /// Fails the sends a closed client refused.
    private func answerRefused(_ refused: [(Transmission, SpoolError)]) {
        for (transmission, error) in refused { answered(transmission, .failure(error)) }
    }

    private func requestIdentity() async {
        let result: Result<InitProducerIDResponse, SpoolError>
        do {
            let reply = try await client.call(.initProducerID, [InitProducerIDRequest().encoded()])
            result = .success(try client.decode(InitProducerIDResponse.self, reply))
        } catch {
            result = .failure(error)
        }
        let now = MonotonicClock.now()
        let actions = state.withLock { $0.identityResolved(result, now: now) }
        perform(actions)
    }

    // MARK: Side effects

    private func perform(_ actions: ProducerActions) {
        for log in actions.logs { write(log) }
        for (continuation, result) in actions.buffered { continuation.resume(returning: result) }
        for (continuation, result) in actions.published { continuation.resume(returning: result) }
        for continuation in actions.flushed { continuation.resume() }
        actions.loopWakeup?.resume()
    }

    private func write(_ log: ProducerLog) {
        switch log {
        case .retrying(let topic, let partition, let batches, let attempt, let error, let delay):
            // The first retry of a batch is worth a warning (a full disk, a broker restarting); the ones after it are not.
            // A refusal or a storage error says nothing was stored; a lost connection or a timeout leaves it open.
            let what = BatchOutcome.storedNothing(error) ? "the broker did not store a batch; retrying"
                                                                : "a batch got no answer (the broker may have stored it); retrying"
            logger.log(level: attempt <= 1 ? .warning : .debug, "\(what)", metadata: [
                "topic": "\(topic)", "partition": "\(partition)", "batches": "\(batches)", "attempt": "\(attempt)",
                "error": "\(error.code): \(error.message)", "delay": "\(Duration.nanoseconds(Int64(clamping: delay)))",
            ])
        case .resequenced(let topic, let partition, let from, let to):
            logger.info("the broker lacks batches that failed here; moved the next sequences down", metadata: [
                "topic": "\(topic)", "partition": "\(partition)", "from": "\(from)", "to": "\(to)",
            ])
        case .expired(let error):
            logger.warning("records expired", metadata: ["error": "\(error.message)"])
        case .identityUnsupported:
            logger.warning("the broker does not hand out producer ids; producing without idempotence (a retry may store a batch twice)")
        case .identityFailed(let error):
            logger.error("cannot get a producer id", metadata: ["error": "\(error.code): \(error.message)"])
        }
    }

    static func wallClockMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}
