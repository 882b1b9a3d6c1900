@testable import Spool
import SpoolWire
import Synchronization
import Testing

/// The consumer's decisions without a broker: which fetches go out from which offsets, what a
/// reply, a failure, a full buffer or a revocation does, and when the membership task joins,
/// heartbeats, commits and retries. Replies are scripted.
@Suite struct ConsumerStateTests {
    static let p0 = TopicPartition(topic: "t", partition: 0)
    static let p1 = TopicPartition(topic: "t", partition: 1)

    static func makeState() -> ConsumerState {
        let ids = Counter()
        return ConsumerState(nextRequestID: { ids.next() })
    }

    static func records(_ partition: TopicPartition, _ offsets: ClosedRange<Int64>) -> [SpoolRecord] {
        offsets.map { SpoolRecord(topic: partition.topic, partition: partition.partition, offset: $0, timestamp: 0, key: nil, value: [UInt8($0 & 0xFF)], headers: []) }
    }

    /// Starts `partition` at `offset` and returns the fetch it sent.
    static func start(_ state: inout ConsumerState, _ partition: TopicPartition, at offset: Int64, maxBuffered: Int = 100) throws -> FetchOrder {
        var actions = ConsumerActions()
        state.start(partition, at: offset, committed: nil, maxBuffered: maxBuffered, actions: &actions)
        return try #require(actions.fetches.first)
    }

    static func take(_ state: inout ConsumerState, maxBuffered: Int = 100) -> (SpoolRecord?, ConsumerActions) {
        var actions = ConsumerActions()
        guard case .records(let records) = state.takeRecords(upTo: 1, maxBuffered: maxBuffered, actions: &actions) else { return (nil, actions) }
        return (records.first, actions)
    }

    @Test func eachReplyBuffersItsRecordsAndSendsTheNextFetchFromAfterTheLast() throws {
        var state = Self.makeState()
        let first = try Self.start(&state, Self.p0, at: 5)
        #expect(first.offset == 5)
        #expect(state.partitions[Self.p0]?.phase == .inFlight(requestID: first.requestID))

        var actions = ConsumerActions()
        state.fetched(first, FetchedRecords(records: Self.records(Self.p0, 5...7), nextOffset: 0, logEndOffset: 0), maxBuffered: 100, actions: &actions)
        #expect(state.bufferedCount == 3)
        let second = try #require(actions.fetches.first)
        #expect(actions.fetches.count == 1, "one fetch out per partition")
        #expect(second.offset == 8 && second.epoch == first.epoch && second.requestID != first.requestID)

        // An empty reply (the long poll ended) fetches again from the same offset.
        actions = ConsumerActions()
        state.fetched(second, FetchedRecords(records: [], nextOffset: 0, logEndOffset: 0), maxBuffered: 100, actions: &actions)
        #expect(actions.fetches.map(\.offset) == [8])

        // A second reply for a fetch that is no longer out changes nothing; the one out sends the next.
        let third = try #require(actions.fetches.first)
        actions = ConsumerActions()
        state.fetched(second, FetchedRecords(records: Self.records(Self.p0, 8...9), nextOffset: 0, logEndOffset: 0), maxBuffered: 100, actions: &actions)
        state.fetchFailed(second, error: SpoolError(.unknownTopic, "late"), reset: .earliest, actions: &actions)
        #expect(actions.fetches.isEmpty && actions.failure == nil && state.bufferedCount == 3)
        state.fetched(third, FetchedRecords(records: [], nextOffset: 0, logEndOffset: 0), maxBuffered: 100, actions: &actions)
        state.fetched(third, FetchedRecords(records: [], nextOffset: 0, logEndOffset: 0), maxBuffered: 100, actions: &actions)
        #expect(actions.fetches.count == 1, "each reply of the partition's single fetch out sends the next")

        #expect(Self.take(&state).0?.offset == 5)
        #expect(Self.take(&state).0?.offset == 6)
        #expect(state.uncommitted(in: nil) == [CommittedOffset(partition: Self.p0, offset: 6)], "a record counts as processed when the next is taken")
    }

    @Test func aBatchTakesWhatIsBufferedAndCountsAsProcessedAtTheNextTake() throws {
        var state = Self.makeState()
        let order = try Self.start(&state, Self.p0, at: 0)
        var actions = ConsumerActions()
        state.fetched(order, FetchedRecords(records: Self.records(Self.p0, 0...4), nextOffset: 0, logEndOffset: 0), maxBuffered: 100, actions: &actions)
        guard case .records(let first) = state.takeRecords(upTo: 3, maxBuffered: 100, actions: &actions) else {
            Issue.record("expected records")
            return
        }
        #expect(first.map(\.offset) == [0, 1, 2])
        #expect(state.uncommitted(in: nil).isEmpty, "nothing is processed while the handler holds the batch")
        guard case .records(let second) = state.takeRecords(upTo: 3, maxBuffered: 100, actions: &actions) else {
            Issue.record("expected records")
            return
        }
        #expect(second.map(\.offset) == [3, 4], "a batch never waits for more than is buffered")
        #expect(state.uncommitted(in: nil) == [CommittedOffset(partition: Self.p0, offset: 3)])
    }

    @Test func aFullBufferPausesFetchingUntilTheHandlerMakesRoom() throws {
        var state = Self.makeState()
        let order = try Self.start(&state, Self.p0, at: 0, maxBuffered: 3)
        var actions = ConsumerActions()
        state.fetched(order, FetchedRecords(records: Self.records(Self.p0, 0...4), nextOffset: 0, logEndOffset: 0), maxBuffered: 3, actions: &actions)
        #expect(state.bufferedCount == 3, "only what fits is taken")
        #expect(actions.fetches.isEmpty)
        #expect(state.partitions[Self.p0]?.phase == .waitingForRoom)

        // A second partition started while the buffer is full waits too.
        actions = ConsumerActions()
        state.start(Self.p1, at: 0, committed: nil, maxBuffered: 3, actions: &actions)
        #expect(actions.fetches.isEmpty)

        let (record, resumed) = Self.take(&state, maxBuffered: 3)
        #expect(record?.offset == 0)
        #expect(Set(resumed.fetches.map(\.partition)) == [Self.p0, Self.p1])
        #expect(resumed.fetches.first { $0.partition == Self.p0 }?.offset == 3, "records that did not fit are fetched again")
    }

    @Test func aRevokedPartitionCancelsItsFetchAndDropsItsRecordsAndLateReplies() throws {
        var state = Self.makeState()
        let old = try Self.start(&state, Self.p0, at: 0)
        let other = try Self.start(&state, Self.p1, at: 0)
        var actions = ConsumerActions()
        state.fetched(other, FetchedRecords(records: Self.records(Self.p1, 0...1), nextOffset: 0, logEndOffset: 0), maxBuffered: 100, actions: &actions)

        actions = ConsumerActions()
        state.stopFetching([Self.p0], actions: &actions)
        #expect(actions.cancellations == [old.requestID])
        state.fetched(old, FetchedRecords(records: Self.records(Self.p0, 0...9), nextOffset: 0, logEndOffset: 0), maxBuffered: 100, actions: &actions)
        #expect(state.bufferedCount == 2, "a reply after the revocation is dropped")
        #expect(actions.fetches.isEmpty)

        // Assigned again: a new epoch, and a reply of the old one is still dropped.
        let new = try Self.start(&state, Self.p0, at: 4)
        #expect(new.epoch != old.epoch)
        actions = ConsumerActions()
        state.fetched(old, FetchedRecords(records: Self.records(Self.p0, 0...9), nextOffset: 0, logEndOffset: 0), maxBuffered: 100, actions: &actions)
        #expect(state.bufferedCount == 2)
        state.fetched(new, FetchedRecords(records: Self.records(Self.p0, 4...4), nextOffset: 0, logEndOffset: 0), maxBuffered: 100, actions: &actions)
        #expect(state.bufferedCount == 3)
    }

    @Test func failuresBackOffResetOrFailTheConsumer() throws {
        var state = Self.makeState()
        var order = try Self.start(&state, Self.p0, at: 7)
        var actions = ConsumerActions()
        state.fetchFailed(order, error: SpoolError(.connectionLost, "lost"), reset: .earliest, actions: &actions)
        #expect(actions.fetches.isEmpty)
        #expect(actions.retries.map(\.after) == [.milliseconds(50)])
        #expect(state.partitions[Self.p0]?.phase == .backingOff)

        // The retry fetches from the same offset; a second failure in a row waits twice as long.
        actions = ConsumerActions()
        state.retryDue(Self.p0, epoch: order.epoch, actions: &actions)
        order = try #require(actions.fetches.first)
        #expect(order.offset == 7)
        actions = ConsumerActions()
        state.fetchFailed(order, error: SpoolError(.timedOut, "slow"), reset: .earliest, actions: &actions)
        #expect(actions.retries.map(\.after) == [.milliseconds(100)])
        actions = ConsumerActions()
        state.retryDue(Self.p0, epoch: order.epoch, actions: &actions)
        state.retryDue(Self.p0, epoch: order.epoch, actions: &actions)
        #expect(actions.fetches.count == 1, "a retry that is no longer due sends nothing")

        // Out of range moves to the reset position the broker named.
        order = try #require(actions.fetches.first)
        actions = ConsumerActions()
        state.fetchFailed(order, error: SpoolError(.offsetOutOfRange, "gone", details: ["earliest": 20, "latest": 30]),
                          reset: .earliest, actions: &actions)
        #expect(actions.fetches.map(\.offset) == [20])
        #expect(actions.resets.map(\.to) == [20])

        // A failure no retry can mend fails the consumer: the reader gets it.
        order = try #require(actions.fetches.first)
        actions = ConsumerActions()
        state.fetchFailed(order, error: SpoolError(.unknownTopic, "no topic t"), reset: .earliest, actions: &actions)
        #expect(actions.failure?.code == .unknownTopic)
        var takeActions = ConsumerActions()
        guard case .failed(let error) = state.takeRecords(upTo: 1, maxBuffered: 100, actions: &takeActions) else {
            Issue.record("the reader should get the failure")
            return
        }
        #expect(error.code == .unknownTopic)
    }

    @Test func outOfRangeWithoutAResetPolicyFailsAndACancelledFetchStopsQuietly() throws {
        var state = Self.makeState()
        let p0 = try Self.start(&state, Self.p0, at: 0)
        let p1 = try Self.start(&state, Self.p1, at: 0)
        var actions = ConsumerActions()
        state.fetchFailed(p1, error: SpoolError(.cancelled, "cancelled"), reset: .earliest, actions: &actions)
        #expect(actions.fetches.isEmpty && actions.retries.isEmpty && actions.failure == nil)
        #expect(state.partitions[Self.p1]?.phase == .stopped)
        state.fetchFailed(p0, error: SpoolError(.offsetOutOfRange, "gone", details: ["earliest": 3, "latest": 9]),
                          reset: .error, actions: &actions)
        #expect(actions.failure?.code == .offsetOutOfRange)
    }

    @Test func theParkedReaderIsWokenByRecordsAndARevocationByTheHandlersNextTake() async throws {
        var state = Self.makeState()
        let order = try Self.start(&state, Self.p0, at: 0)
        var fetchActions = ConsumerActions()
        await withCheckedContinuation { reader in
            do {
                let result = state.park(reader)
                #expect(result)
            }
            state.fetched(order, FetchedRecords(records: Self.records(Self.p0, 0...0), nextOffset: 0, logEndOffset: 0), maxBuffered: 100, actions: &fetchActions)
            #expect(fetchActions.wakeups.count == 1, "the records wake the reader")
            for wakeup in fetchActions.wakeups { wakeup.resume() }
        }
        let (record, _) = Self.take(&state)
        #expect(record?.offset == 0)
        var actions = ConsumerActions()
        state.stopFetching([Self.p0], actions: &actions)
        await withCheckedContinuation { revocation in
            do {
                let result = state.waitForHandler([Self.p0], revocation)
                #expect(result, "the handler holds a record of the revoked partition")
            }
            let (next, taken) = Self.take(&state)
            #expect(next == nil)
            #expect(taken.wakeups.count == 1, "asking for the next record lets the revocation go on")
            for wakeup in taken.wakeups { wakeup.resume() }
        }
        #expect(state.uncommitted(in: [Self.p0]) == [CommittedOffset(partition: Self.p0, offset: 1)])
    }

    // MARK: Membership

    @Test func membershipJoinsThenHeartbeatsAndCommitsWhenDue() {
        let start = ContinuousClock.now
        var schedule = MembershipSchedule(sessionTimeout: .seconds(9), autoCommitInterval: .seconds(1), now: start)
        do {
            let result = schedule.next(now: start)
            #expect(result == .join)
        }
        do {
            let result = schedule.next(now: start)
            #expect(result == .join, "until a join works")
        }
        schedule.contacted(now: start)
        do {
            let result = schedule.next(now: start)
            #expect(result == .wait(until: start + .seconds(1)))
        }
        do {
            let result = schedule.next(now: start + .seconds(1))
            #expect(result == .commit)
        }
        do {
            let result = schedule.next(now: start + .seconds(1))
            #expect(result == .wait(until: start + .seconds(2)))
        }
        do {
            let result = schedule.next(now: start + .seconds(3))
            #expect(result == .heartbeat, "every third of the session timeout")
        }
        schedule.contacted(now: start + .seconds(3))
        schedule.released()
        do {
            let result = schedule.next(now: start + .seconds(3))
            #expect(result == .heartbeat, "a release goes at once")
        }
        do {
            let result = schedule.next(now: start + .seconds(3))
            #expect(result == .commit)
        }

        var manual = MembershipSchedule(sessionTimeout: .seconds(9), autoCommitInterval: nil, now: start)
        manual.contacted(now: start)
        do {
            let result = manual.next(now: start + .seconds(2))
            #expect(result == .wait(until: start + .seconds(3)), "no commits without automatic commits")
        }
    }

    @Test func membershipRecoversFromEachKindOfFailure() {
        let start = ContinuousClock.now
        var schedule = MembershipSchedule(sessionTimeout: .seconds(9), autoCommitInterval: .seconds(1), now: start)
        schedule.contacted(now: start)
        do {
            let result = schedule.failed(SpoolError(.staleGeneration, "stale"), now: start)
            #expect(result == .continueNow)
        }
        do {
            let result = schedule.next(now: start)
            #expect(result == .heartbeat, "a stale generation refreshes the assignment at once")
        }
        do {
            let result = schedule.failed(SpoolError(.unknownMember, "forgotten"), now: start)
            #expect(result == .continueNow)
        }
        do {
            let result = schedule.next(now: start)
            #expect(result == .join)
        }
        do {
            let result = schedule.failed(SpoolError(.connectionLost, "lost"), now: start + .seconds(1))
            #expect(result == .retry(after: .milliseconds(50), sessionExpired: false))
        }
        do {
            let result = schedule.failed(SpoolError(.connectionLost, "lost"), now: start + .seconds(2))
            #expect(result == .retry(after: .milliseconds(100), sessionExpired: false))
        }
        do {
            let result = schedule.failed(SpoolError(.connectionLost, "lost"), now: start + .seconds(10))
            #expect(result == .retry(after: .milliseconds(200), sessionExpired: true),
                "no contact for longer than the session: the partitions are gone")
        }
        schedule.contacted(now: start + .seconds(11))
        do {
            let result = schedule.failed(SpoolError(.timedOut, "slow"), now: start + .seconds(12))
            #expect(result == .retry(after: .milliseconds(50), sessionExpired: false),
                "contact resets the backoff")
        }
        do {
            let result = schedule.failed(SpoolError(.notAuthorized, "no"), now: start)
            #expect(result == .fail)
        }
        do {
            let result = schedule.failed(SpoolError(.clientClosed, "closed"), now: start)
            #expect(result == .stop)
        }
    }
}

/// Request ids for the state under test.
private final class Counter: Sendable {
    private let value = Atomic<UInt64>(0)
    func next() -> UInt64 { value.wrappingAdd(1, ordering: .relaxed).newValue }
}
