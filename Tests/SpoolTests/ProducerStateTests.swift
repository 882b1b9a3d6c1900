import Foundation
@testable import Spool
import SpoolTesting
import SpoolWire
import Testing

/// The producer's decisions without a broker: which batches go out with which sequences, what
/// is resent after which answer, and what fails. Answers are scripted, including the ones a
/// broker sends when batches get lost.
@Suite struct ProducerStateTests {
    static let producerID: Int64 = 42
    static let epoch: Int16 = 3

    /// A state with one single-partition topic "t", a known producer id, and `records` records of
    /// 400 bytes buffered: two per batch with 1 KiB batches, where a batch closes when the next
    /// record does not fit (so 2n + 1 records make n closed batches and one open).
    static func makeState(records: Int, configuration: ProducerConfiguration = ProducerConfiguration(linger: .seconds(3600), batchBytes: 1024),
                          nextSequence: Int32 = 0) -> ProducerState {
        var state = ProducerState(configuration: configuration)
        state.addTopic("t", partitionCount: 1)
        state.partitions[0].nextSequence = nextSequence
        var actions = ProducerActions()
        _ = state.identityResolved(.success(InitProducerIDResponse(producerID: producerID, producerEpoch: epoch)), now: MonotonicClock.now())
        for number in 0..<records {
            let value = Array(repeating: UInt8(number), count: 400)
            let attempt = state.tryAppend(topic: "t", partition: nil, key: nil, value: value, headers: [], timestamp: 1_000,
                                          size: RecordSize.upperBound(key: nil, value: value, headers: []), actions: &actions)
            guard case .appended = attempt else { Issue.record("record \(number) was not buffered: \(attempt)"); break }
        }
        return state
    }

    static func header(_ transmission: Transmission) throws -> RecordBatch.Header {
        try transmission.batch.withUnsafeBytes { try RecordBatch.validate($0) }
    }

    static func stored(_ offset: Int64) -> Result<ProduceResponse, SpoolError> {
        .success(ProduceResponse(partition: 0, baseOffset: offset, durability: .onDisk))
    }

    static let lost = Result<ProduceResponse, SpoolError>.failure(SpoolError(.connectionLost, "connection lost"))

    @Test func batchesGoOutStampedWithConsecutiveSequencesUpToTheInFlightLimit() throws {
        var state = Self.makeState(records: 13)  // 6 closed batches of 2
        let plan = state.plan(now: MonotonicClock.now())
        #expect(plan.transmissions.count == 5, "the in-flight limit")
        let headers = try plan.transmissions.map(Self.header)
        #expect(headers.map(\.baseSequence) == [0, 2, 4, 6, 8])
        #expect(headers.allSatisfy { $0.producerID == Self.producerID && $0.producerEpoch == Self.epoch && $0.recordCount == 2 })
        // An acknowledgement frees a slot for the next ready batch.
        _ = state.transmitted(slot: 0, batchID: plan.transmissions[0].batchID, result: Self.stored(0), now: MonotonicClock.now())
        let next = state.plan(now: MonotonicClock.now())
        #expect(try next.transmissions.map(Self.header).map(\.baseSequence) == [10])
    }

    @Test func aBatchPastItsLingerKeepsFillingWhileNoSlotIsFree() throws {
        var state = Self.makeState(records: 1, configuration: ProducerConfiguration(linger: .zero, maxInFlightPerPartition: 1))
        let now = MonotonicClock.now()
        let first = state.plan(now: now).transmissions
        #expect(try first.map(Self.header).map(\.recordCount) == [1])
        var actions = ProducerActions()
        for number in 0..<3 {
            let value = [UInt8(number)]
            _ = state.tryAppend(topic: "t", partition: nil, key: nil, value: value, headers: [], timestamp: 1_000,
                                size: RecordSize.upperBound(key: nil, value: value, headers: []), actions: &actions)
        }
        #expect(state.plan(now: now + 1_000_000).transmissions.isEmpty, "the only slot is taken")
        #expect(state.partitions[0].open?.recordCount == 3)
        _ = state.transmitted(slot: 0, batchID: first[0].batchID, result: Self.stored(0), now: now)
        #expect(state.wakePending, "a free slot wakes the loop")
        let next = try state.plan(now: now + 2_000_000).transmissions.map(Self.header)
        #expect(next.map(\.recordCount) == [3], "the three records leave together")
        #expect(next.map(\.baseSequence) == [1])
    }

    /// Without linger, the caller's own thread sends what may leave at once: the open batch is
    /// closed and stamped with the next sequence while the partition has in-flight room, and left
    /// to fill (for the loop) once the window is full or a retry is pending. With a linger,
    /// nothing leaves before it.
    @Test func withoutLingerARecordLeavesFromTheCallersThreadWhileTheWindowHasRoom() throws {
        var state = Self.makeState(records: 1, configuration: ProducerConfiguration(linger: .zero, maxInFlightPerPartition: 2))
        var actions = ProducerActions()
        let first = try state.sendWithoutWaiting(actions: &actions).map(Self.header)
        #expect(first.map(\.baseSequence) == [0] && first.map(\.recordCount) == [1])
        func append(_ number: Int) {
            let value = [UInt8(number)]
            _ = state.tryAppend(topic: "t", partition: nil, key: nil, value: value, headers: [], timestamp: 1_000,
                                size: RecordSize.upperBound(key: nil, value: value, headers: []), actions: &actions)
        }
        append(1)
        let second = state.sendWithoutWaiting(actions: &actions)
        #expect(try second.map(Self.header).map(\.baseSequence) == [1])
        append(2)
        append(3)
        #expect(state.sendWithoutWaiting(actions: &actions).isEmpty, "the window of 2 is full: the records wait in the open batch")
        #expect(state.partitions[0].open?.recordCount == 2)
        // A failed batch puts the partition into retry: nothing leaves past it until the loop resends.
        _ = state.transmitted(slot: 0, batchID: second[0].batchID, result: Self.lost, now: MonotonicClock.now())
        _ = state.transmitted(slot: 0, batchID: state.partitions[0].inFlight[0].id, result: Self.stored(0), now: MonotonicClock.now())
        #expect(state.partitions[0].retrying)
        #expect(state.sendWithoutWaiting(actions: &actions).isEmpty)

        var lingering = Self.makeState(records: 1, configuration: ProducerConfiguration(linger: .milliseconds(5)))
        #expect(lingering.sendWithoutWaiting(actions: &actions).isEmpty, "with a linger the loop decides when the batch leaves")
    }

    /// A batch that expires after the broker refused it says why, and nothing more (it was not
    /// stored); one whose resend still awaits its reply when it expires says the broker may have
    /// stored it.
    @Test(arguments: [false, true])
    func anExpiredBatchSaysWhyAndWhetherItMayBeStored(resentAndAwaiting: Bool) throws {
        var state = Self.makeState(records: 1, configuration: ProducerConfiguration(linger: .zero, deliveryTimeout: .seconds(1)))
        let start = MonotonicClock.now()
        let sent = try #require(state.plan(now: start).transmissions.first)
        let full = SpoolError(.storageError, "append to t/0 failed, nothing was stored: the disk is full (0 B free on /data)")
        _ = state.transmitted(slot: 0, batchID: sent.batchID, result: .failure(full), now: start)
        if resentAndAwaiting {
            #expect(state.plan(now: start + 500_000_000).transmissions.count == 1, "the resend")
        }
        _ = state.plan(now: start + 2_000_000_000)
        let failure = state.takeFailure()
        let error = try #require(failure)
        #expect(error.code == .timedOut)
        #expect(error.message.contains("the disk is full"), "\(error.message)")
        #expect(error.message.contains("may have stored it") == resentAndAwaiting, "\(error.message)")
    }

    @Test func aLostBatchIsResentWithLaterOnesInOrderWithTheSameBytes() throws {
        var state = Self.makeState(records: 11)
        let now = MonotonicClock.now()
        let sent = state.plan(now: now).transmissions
        #expect(sent.count == 5)
        // The answers arrive out of order; the second batch was stored, the others were lost.
        _ = state.transmitted(slot: 0, batchID: sent[1].batchID, result: Self.stored(2), now: now)
        _ = state.transmitted(slot: 0, batchID: sent[0].batchID, result: Self.lost, now: now)
        #expect(state.partitions[0].inFlight.count == 5, "nothing settles before the batch in front of it")
        #expect(state.plan(now: now).transmissions.isEmpty, "no resend while answers are outstanding")
        for transmission in sent[2...] { _ = state.transmitted(slot: 0, batchID: transmission.batchID, result: Self.lost, now: now) }
        #expect(state.plan(now: now).transmissions.isEmpty, "the backoff comes first")
        let resent = state.plan(now: now + 60_000_000).transmissions
        #expect(resent.map(\.batchID) == [sent[0], sent[2], sent[3], sent[4]].map(\.batchID))
        #expect(resent.map(\.batch) == [sent[0], sent[2], sent[3], sent[4]].map(\.batch), "a resent batch keeps its bytes and sequence")
        for (transmission, offset) in zip(resent, [0, 4, 6, 8] as [Int64]) {
            _ = state.transmitted(slot: 0, batchID: transmission.batchID, result: Self.stored(offset), now: now)
        }
        #expect(state.partitions[0].inFlight.isEmpty)
        #expect(state.bufferedBytes == state.partitions[0].open?.accountedBytes, "only the open batch is left")
        #expect(state.takeFailure() == nil)
    }

    @Test func duplicateAnswersCountAsStored() throws {
        var state = Self.makeState(records: 5)
        let sent = state.plan(now: MonotonicClock.now()).transmissions
        try #require(sent.count == 2)
        _ = state.transmitted(slot: 0, batchID: sent[0].batchID, result: .failure(SpoolError(.duplicateSequence, "stored long ago")), now: MonotonicClock.now())
        _ = state.transmitted(slot: 0, batchID: sent[1].batchID, result: Self.stored(2), now: MonotonicClock.now())
        #expect(state.partitions[0].inFlight.isEmpty)
        #expect(state.takeFailure() == nil)
    }

    @Test func aRefusedBatchFailsAndLaterBatchesMoveDownToCloseTheGap() throws {
        var state = Self.makeState(records: 9)
        let now = MonotonicClock.now()
        let sent = state.plan(now: now).transmissions
        #expect(try sent.map(Self.header).map(\.baseSequence) == [0, 2, 4, 6])
        _ = state.transmitted(slot: 0, batchID: sent[0].batchID, result: .failure(SpoolError(.recordTooLarge, "too large")), now: now)
        // The broker refuses the later batches: it still expects sequence 0.
        for transmission in sent[1...] {
            _ = state.transmitted(slot: 0, batchID: transmission.batchID,
                                  result: .failure(SpoolError(.outOfOrderSequence, "expected 0", details: ["expected": 0])), now: now)
        }
        let taken = state.takeFailure()
        let failure = try #require(taken)
        #expect(failure.code == .recordTooLarge && failure.message.contains("t/0"), "\(failure)")
        let resent = state.plan(now: now).transmissions
        #expect(resent.map(\.batchID) == sent[1...].map(\.batchID), "resent at once, in order")
        let headers = try resent.map(Self.header)  // validate: the checksum was recomputed
        #expect(headers.map(\.baseSequence) == [0, 2, 4])
        #expect(headers.allSatisfy { $0.producerID == Self.producerID && $0.producerEpoch == Self.epoch })
        for (transmission, offset) in zip(resent, [0, 2, 4] as [Int64]) {
            _ = state.transmitted(slot: 0, batchID: transmission.batchID, result: Self.stored(offset), now: now)
        }
        #expect(state.partitions[0].inFlight.isEmpty)
        #expect(state.partitions[0].nextSequence == 6)
    }

    @Test func aRefusedBatchWithNothingAfterItGivesItsSequenceBack() throws {
        var state = Self.makeState(records: 3)
        let sent = state.plan(now: MonotonicClock.now()).transmissions
        try #require(sent.count == 1)
        _ = state.transmitted(slot: 0, batchID: sent[0].batchID, result: .failure(SpoolError(.notAuthorized, "no")), now: MonotonicClock.now())
        #expect(state.partitions[0].nextSequence == 0)
        #expect(state.takeFailure()?.code == .notAuthorized)
    }

    @Test func aBatchWhoseFateIsUnknownKeepsItsSequence() throws {
        var state = Self.makeState(records: 3)
        let sent = state.plan(now: MonotonicClock.now()).transmissions
        _ = state.transmitted(slot: 0, batchID: sent[0].batchID, result: .failure(SpoolError(.protocolViolation, "garbled reply")),
                              now: MonotonicClock.now())
        #expect(state.partitions[0].nextSequence == 2, "the broker may hold sequences 0 and 1")
        #expect(state.takeFailure()?.code == .protocolViolation)
    }

    @Test func theFirstBatchWaitsForTheProducerID() throws {
        for idempotent in [true, false] {
            var state = ProducerState(configuration: ProducerConfiguration(linger: .zero, idempotent: idempotent))
            state.addTopic("t", partitionCount: 1)
            var actions = ProducerActions()
            _ = state.tryAppend(topic: "t", partition: nil, key: nil, value: [1], headers: [], timestamp: 0, size: 50, actions: &actions)
            let now = MonotonicClock.now()
            let first = state.plan(now: now)
            guard idempotent else {
                #expect(!first.requestIdentity)
                let header = try #require(try first.transmissions.map(Self.header).first)
                #expect(header.producerID == -1 && header.producerEpoch == -1 && header.baseSequence == -1)
                continue
            }
            #expect(first.requestIdentity && first.transmissions.isEmpty)
            _ = state.tryAppend(topic: "t", partition: nil, key: nil, value: [2], headers: [], timestamp: 0, size: 50, actions: &actions)
            let second = state.plan(now: now)
            #expect(!second.requestIdentity && second.transmissions.isEmpty, "one request at a time")
            _ = state.identityResolved(.failure(SpoolError(.connectionLost, "lost")), now: now)
            #expect(state.plan(now: now).transmissions.isEmpty)
            #expect(state.plan(now: now + 1_000_000_000).requestIdentity, "asked again after the backoff")
            _ = state.identityResolved(.success(InitProducerIDResponse(producerID: 7, producerEpoch: 1)), now: now)
            let headers = try state.plan(now: now).transmissions.map(Self.header)
            #expect(headers.map(\.producerID) == [7] && headers.map(\.recordCount) == [2], "both records in the first batch")
        }
    }

    @Test func batchesPastTheDeliveryTimeoutFailWithHowLongAndHowOften() throws {
        let configuration = ProducerConfiguration(linger: .seconds(3600), batchBytes: 1024, deliveryTimeout: .seconds(10))
        var state = Self.makeState(records: 5, configuration: configuration)  // 2 batches in flight, 1 open
        let start = MonotonicClock.now()
        let sent = state.plan(now: start).transmissions
        for transmission in sent { _ = state.transmitted(slot: 0, batchID: transmission.batchID, result: Self.lost, now: start) }
        let plan = state.plan(now: start + 11_000_000_000)
        #expect(plan.transmissions.isEmpty)
        #expect(state.active.isEmpty && state.bufferedBytes == 0)
        let taken = state.takeFailure()
        let failure = try #require(taken)
        #expect(failure.code == .timedOut)
        #expect(failure.message.hasPrefix("5 enqueued records failed"), "\(failure)")
        #expect(failure.message.contains("delivery timeout of 10") && failure.message.contains("1 attempt"), "\(failure)")
    }

    @Test func aSequenceAboutToOverflowStartsANewEpoch() throws {
        var state = Self.makeState(records: 5, nextSequence: Int32.max - 2)
        let sent = state.plan(now: MonotonicClock.now()).transmissions
        #expect(try sent.map(Self.header).map(\.baseSequence) == [Int32.max - 2], "the second batch waits for the first")
        _ = state.transmitted(slot: 0, batchID: sent[0].batchID, result: Self.stored(0), now: MonotonicClock.now())
        let next = try state.plan(now: MonotonicClock.now()).transmissions.map(Self.header)
        #expect(next.map(\.baseSequence) == [0])
        #expect(next.map(\.producerEpoch) == [Self.epoch + 1])
    }

    @Test func callersWaitWhenTheByteBoundIsReached() {
        let configuration = ProducerConfiguration(linger: .seconds(3600), maxBytesInFlight: 2000)
        var state = ProducerState(configuration: configuration)
        state.addTopic("t", partitionCount: 1)
        var actions = ProducerActions()
        var buffered = 0
        for _ in 0..<10 {
            let value = Array(repeating: UInt8(1), count: 400)
            let attempt = state.tryAppend(topic: "t", partition: nil, key: nil, value: value, headers: [], timestamp: 0,
                                          size: RecordSize.upperBound(key: nil, value: value, headers: []), actions: &actions)
            guard case .appended = attempt else { break }
            buffered += 1
        }
        #expect(buffered == 4)
        #expect(state.bufferedBytes <= 2000)
    }

    @Test func exactRecordSizesMatchTheBuilder() {
        var generator = SeededGenerator(seed: 7)
        for _ in 0..<200 {
            let record = generator.record()
            var builder = RecordBatchBuilder()
            builder.append(timestamp: 5, key: record.key, value: record.value, headers: record.headers)
            #expect(RecordSize.loneBatch(key: record.key, value: record.value, headers: record.headers) == builder.finish().count)
            #expect(RecordSize.upperBound(key: record.key, value: record.value, headers: record.headers) >= builder.byteCount - RecordBatch.headerSize)
        }
    }
}
