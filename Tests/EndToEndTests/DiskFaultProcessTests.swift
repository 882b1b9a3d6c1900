import Foundation
import GRDB
import Logging
import Spool
import SpoolSaga
import SpoolTesting
import Synchronization
import Testing

/// The event of the outbox test.
private struct NoteWritten: SpoolEvent {
    static let eventType = "note-written"
    var number: Int
}

extension EndToEndTests {
    /// The real `spoold` and `spool` on real filesystems that fill up, turn read-only or hit the
    /// file-size limit: every acknowledged record is stored once at the offset its
    /// acknowledgement named (also after kill -9), every refused record gets an error that says
    /// why, nothing hangs, reads go on, and writes resume by themselves once the cause is gone.
    /// Needs root to mount; where it cannot, the suite is skipped with the reason, and the same
    /// faults are covered by injection in SpoolBrokerTests.DiskFaultTests and SpoolStorageTests.
    @Suite(.enabled(if: SmallFilesystem.unavailableReason == nil, "\(SmallFilesystem.unavailableReason ?? "")"))
    struct DiskFaultProcessTests {
        /// What the producers learnt, value by value: acknowledged at an offset, or failed with a message.
        final class Outcomes: Sendable {
            /// Where an acknowledgement said a record is.
            struct Place: Hashable, Sendable {
                let partition: Int32
                let offset: Int64
            }

            private let state = Mutex<(acknowledged: [String: Place], failed: [String: String])>(([:], [:]))
            var acknowledged: [String: Place] { state.withLock { $0.acknowledged } }
            var failed: [String: String] { state.withLock { $0.failed } }

            /// Sends every value through `producer` at once (each awaiting its own acknowledgement)
            /// and records how each ended.
            func send(_ values: [String], to topic: String, through producer: Producer) async {
                await withTaskGroup(of: Void.self) { group in
                    for value in values {
                        group.addTask {
                            do throws(SpoolError) {
                                let result = try await producer.send(to: topic, value: Array(value.utf8))
                                self.state.withLock { $0.acknowledged[value] = Place(partition: result.partition, offset: result.baseOffset) }
                            } catch {
                                self.state.withLock { $0.failed[value] = error.message }
                            }
                        }
                    }
                }
            }
        }

        /// Records a failure may leave stored: those that failed "in doubt" (the broker may have
        /// stored it: a retry was still unanswered at the delivery timeout). Checks that no other
        /// failed record is among `stored` and returns how many in-doubt ones are.
        static func storedInDoubt(_ failed: [String: String], among stored: Set<String>) -> Int {
            let refused = failed.filter { !$0.value.contains("may have stored it") }
            #expect(refused.keys.allSatisfy { !stored.contains($0) }, "a record failed after a refusal is not stored")
            return failed.count { $0.value.contains("may have stored it") && stored.contains($0.key) }
        }

        /// The values a consumer group has seen.
        final class Seen: Sendable {
            let values = Mutex<Set<String>>([])
        }

        static let topic = "disk"
        static let padding = String(repeating: "x", count: 80)

        static func values(_ prefix: String, _ count: Int) -> [String] {
            (0..<count).map { "\(prefix)-\($0)-\(padding)" }
        }

        static func producer(_ client: SpoolClient) throws -> Producer {
            try Producer(client: client, configuration: ProducerConfiguration(linger: .milliseconds(2), batchBytes: 16 * 1024,
                                                                             deliveryTimeout: .seconds(4)),
                         logger: Logger(label: "spool.test.producer", factory: { _ in SwiftLogNoOpLogHandler() }))
        }

        /// Reads the whole topic and checks what every user relies on: each acknowledged value at
        /// the offset its acknowledgement named, no value stored twice. Returns the values in order.
        static func checkStored(_ daemon: Daemon, acknowledged: [String: Outcomes.Place], partitions: Int32 = 1) async throws -> [String] {
            let client = try await daemon.makeClient()
            defer { client.close() }
            var stored: [Outcomes.Place: String] = [:]
            var values: [String] = []
            for partition in 0..<partitions {
                for record in try await client.readToEnd(of: topic, partition: partition) {
                    let value = String(decoding: record.value, as: UTF8.self)
                    stored[Outcomes.Place(partition: partition, offset: record.offset)] = value
                    values.append(value)
                }
            }
            #expect(Set(values).count == values.count, "no record is stored twice")
            let misplaced = acknowledged.filter { value, place in stored[place] != value }
            #expect(misplaced.isEmpty, "\(misplaced.count) of \(acknowledged.count) acknowledged records are not at their offset, e.g. \(misplaced.first.map { "\($0)" } ?? "")")
            return values
        }

        /// The values of `prefix` among `values` are `prefix-0`, `prefix-1`, … in order: a
        /// command that failed part-way stored a prefix of its input, each record once.
        static func isPrefixInOrder(_ values: [String], _ prefix: String) -> Bool {
            let stored = values.filter { $0.hasPrefix("\(prefix)-") }
            return stored == Self.values(prefix, stored.count)
        }

        /// A `spoold` on `dataDirectory` (run under `launcher`), a client of it, and the test's
        /// producer, with the topic created. Call `daemon.cleanUp()` and `client.close()` in defers.
        static func start(on dataDirectory: String, launcher: [String] = []) async throws -> (Daemon, SpoolClient, Producer) {
            let daemon = try await Daemon.start(dataDirectory: dataDirectory, launcher: launcher)
            do {
                let client = try await daemon.makeClient()
                try await client.createTopic(topic, partitions: 1)
                return (daemon, client, try producer(client))
            } catch {
                daemon.cleanUp()
                throw error
            }
        }

        /// Runs `spool publish` with `values` as lines.
        static func publish(_ daemon: Daemon, _ values: [String]) async throws -> CommandResult {
            try await runSpool(["publish", topic, "--broker", daemon.endpoint, "--delivery-timeout", "3"],
                               input: Data((values.joined(separator: "\n") + "\n").utf8), timeout: .seconds(60))
        }

        /// A full disk under `fsync: always`: produces are refused with "the disk is full", the
        /// CLI exits 1 saying so, reads go on, spoold logs the fault (not once per refusal), and
        /// once space is freed the same producer and the CLI publish again without a restart;
        /// after kill -9 and a restart every acknowledged record is where its ack said.
        @Test(.timeLimit(.minutes(5)), arguments: SmallFilesystem.Kind.allCases)
        func aFullDiskLosesNothingAcknowledgedAndWritesResume(kind: SmallFilesystem.Kind) async throws {
            let filesystem = try SmallFilesystem(kind, megabytes: kind == .tmpfs ? 8 : 32)
            defer { filesystem.unmount() }
            let (daemon, client, producer) = try await Self.start(on: "\(filesystem.path)/data")
            defer { daemon.cleanUp() }
            defer { client.close() }
            let outcomes = Outcomes()

            await outcomes.send(Self.values("room", 200), to: Self.topic, through: producer)
            #expect(outcomes.failed.isEmpty, "\(outcomes.failed.values.first ?? "")")

            try filesystem.fill(leaving: 48 << 10)
            await outcomes.send(Self.values("full", 3000), to: Self.topic, through: producer)
            let refused = outcomes.failed
            #expect(refused.count > 0, "the disk filled up")
            #expect(refused.values.allSatisfy { $0.contains("the disk is full") }, "\(Set(refused.values.filter { !$0.contains("the disk is full") }).prefix(3))")

            let cli = try await Self.publish(daemon, Self.values("cli", 500))
            #expect(cli.termination == .exited(1), "\(cli)")
            #expect(cli.stderr.contains("spool: error:") && cli.stderr.contains("the disk is full"), "\(cli.stderr)")
            #expect(cli.stderr.contains("spool: warning:"), "the CLI says it retries while it does")

            let described = try await runSpool(["topics", "describe", Self.topic, "--broker", daemon.endpoint])
            #expect(described.stdoutText.contains("refusing writes: the disk is full"), "\(described.stdoutText)")
            let tail = try await runSpool(["tail", Self.topic, "--from-beginning", "--exit-at-end", "--broker", daemon.endpoint])
            #expect(tail.termination == .exited(0), "reads go on: \(tail)")
            #expect(tail.stdoutLines.count >= 200)

            try filesystem.free()
            await outcomes.send(Self.values("freed", 500), to: Self.topic, through: producer)
            #expect(outcomes.failed.count == refused.count, "once space is back every record is stored")
            let after = try await Self.publish(daemon, Self.values("again", 100))
            #expect(after.termination == .exited(0), "\(after)")
            try await producer.close()

            let log = daemon.stderr
            let faults = log.split(separator: "\n").filter { $0.contains("the disk is full: produces to this partition are refused") }
            let resumed = log.split(separator: "\n").filter { $0.contains("writes resumed") }
            #expect(faults.count >= 1 && faults.count <= resumed.count + 1,
                    "each fault is logged once: \(faults.count) faults, \(resumed.count) resumptions, \(refused.count) refused records")
            #expect(faults.allSatisfy { $0.contains("topic=\(Self.topic)") && $0.contains("partition=0") && $0.contains("path=") })

            try await daemon.kill9()
            try await daemon.start()
            let values = try await Self.checkStored(daemon, acknowledged: outcomes.acknowledged)
            let inDoubt = Self.storedInDoubt(refused, among: Set(values))
            #expect(Self.isPrefixInOrder(values, "cli"))
            #expect(values.filter { $0.hasPrefix("again-") } == Self.values("again", 100))
            #expect(values.count == outcomes.acknowledged.count + inDoubt + values.filter { $0.hasPrefix("cli-") }.count + 100)
        }

        /// The filesystem turns read-only under a running spoold (ext4 after an error, as a dying
        /// disk does): produces are refused with "read-only", nothing refused is acknowledged,
        /// reads go on; after the disk is checked and mounted again, a restarted spoold has every
        /// acknowledged record and takes writes again.
        @Test(.timeLimit(.minutes(5)), .enabled(if: SmallFilesystem.readOnlyUnavailableReason == nil, "\(SmallFilesystem.readOnlyUnavailableReason ?? "")"))
        func aDiskTurningReadOnlyRefusesWritesButKeepsEveryAcknowledgedRecord() async throws {
            let filesystem = try SmallFilesystem(.ext4, megabytes: 32)
            defer { filesystem.unmount() }
            let (daemon, client, producer) = try await Self.start(on: "\(filesystem.path)/data")
            defer { daemon.cleanUp() }
            defer { client.close() }
            let outcomes = Outcomes()
            await outcomes.send(Self.values("before", 300), to: Self.topic, through: producer)
            #expect(outcomes.failed.isEmpty)

            try filesystem.failIntoReadOnly()
            await outcomes.send(Self.values("readonly", 200), to: Self.topic, through: producer)
            #expect(outcomes.failed.count == 200)
            #expect(outcomes.failed.values.allSatisfy { $0.contains("read-only") }, "\(Set(outcomes.failed.values.filter { !$0.contains("read-only") }).prefix(3))")
            let cli = try await Self.publish(daemon, Self.values("cli", 50))
            #expect(cli.termination == .exited(1) && cli.stderr.contains("read-only"), "\(cli)")
            let read = try await client.readToEnd(of: Self.topic)
            #expect(read.count == 300, "reads go on")
            try await producer.close()

            try await daemon.kill9()
            filesystem.unmount()
            try filesystem.remount()
            try await daemon.start()
            let values = try await Self.checkStored(daemon, acknowledged: outcomes.acknowledged)
            #expect(Set(values) == Set(Self.values("before", 300)))
            let again = try await Self.publish(daemon, Self.values("again", 20))
            #expect(again.termination == .exited(0), "\(again)")
        }

        /// `spoold` under a file-size limit (`prlimit --fsize`, as `ulimit -f` sets): past it the
        /// write fails with EFBIG (spoold ignores SIGXFSZ, which would kill it), the produce is
        /// refused with "the file size limit is reached", and once the limit is raised on the
        /// running process writes resume without a restart.
        @Test(.timeLimit(.minutes(5)))
        func aFileSizeLimitRefusesWritesUntilItIsRaised() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-fsize")
            let limit = 256 << 10
            let (daemon, client, producer) = try await Self.start(on: directory.appending("data"),
                                                                  launcher: ["/usr/bin/prlimit", "--fsize=\(limit):unlimited"])
            defer { daemon.cleanUp() }
            defer { client.close() }
            let outcomes = Outcomes()
            await outcomes.send(Self.values("limit", 4000), to: Self.topic, through: producer)
            #expect(outcomes.acknowledged.count > 0 && outcomes.failed.count > 0, "the limit is reached part-way")
            #expect(outcomes.failed.values.allSatisfy { $0.contains("the file size limit is reached") },
                    "\(Set(outcomes.failed.values.filter { !$0.contains("the file size limit is reached") }).prefix(3))")
            #expect(daemon.current?.isRunning == true, "SIGXFSZ did not kill spoold")

            let pid = try #require(daemon.current?.pid)
            try SmallFilesystem.command("/usr/bin/prlimit", ["--pid", "\(pid)", "--fsize=unlimited"])
            await outcomes.send(Self.values("raised", 300), to: Self.topic, through: producer)
            #expect(outcomes.acknowledged.keys.filter { $0.hasPrefix("raised-") }.count == 300, "writes resume once the limit is raised")
            try await producer.close()

            try await daemon.kill9()
            try await daemon.start()
            let values = try await Self.checkStored(daemon, acknowledged: outcomes.acknowledged)
            // A smaller batch may still fit under the limit, so a retry unanswered at its delivery
            // timeout may have been stored: such records failed "in doubt" and may be there.
            let inDoubt = Self.storedInDoubt(outcomes.failed, among: Set(values))
            #expect(values.count == outcomes.acknowledged.count + inDoubt)
        }

        /// The saga kit's outbox on a full disk: the events a service emitted while the broker
        /// refuses writes stay unsent in its SQLite outbox (the relay's flush failed, with the
        /// cause) and are published once space is back, every one of them, without a restart.
        @Test(.timeLimit(.minutes(3)))
        func theOutboxKeepsWhatAFullDiskRefusedAndPublishesItLater() async throws {
            let filesystem = try SmallFilesystem(.tmpfs, megabytes: 8)
            defer { filesystem.unmount() }
            let directory = try TemporaryDirectory(prefix: "spool-e2e-outbox")
            let daemon = try await Daemon.start(dataDirectory: "\(filesystem.path)/data")
            defer { daemon.cleanUp() }
            let client = try await daemon.makeClient()
            defer { client.close() }
            try await client.createTopic(NoteWritten.topic)
            let database = try DatabaseQueue(path: directory.appending("notes.sqlite"))
            let participant = try SagaParticipant(
                name: "notes", client: client, database: database,
                configuration: SagaConfiguration(pollInterval: .milliseconds(50), producer: ProducerConfiguration(linger: .zero, deliveryTimeout: .seconds(1))))
            let running = Task { try await participant.run() }
            defer { running.cancel() }

            try filesystem.fill(leaving: 0)
            for number in 0..<20 {
                _ = try await participant.transaction { context in try context.emit(NoteWritten(number: number), correlationID: "note-\(number)") }
            }
            try await Task.sleep(for: .seconds(3))  // past the relay producer's delivery timeout: its flushes failed
            let unsent = try await database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM spool_outbox WHERE sent_at IS NULL") ?? 0 }
            #expect(unsent > 0, "what the disk refused is still in the outbox")
            #expect(participant.statistics.published < 20)

            try filesystem.free()
            #expect(await eventually(timeout: .seconds(30)) {
                (try? await database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM spool_outbox WHERE sent_at IS NULL") }) == 0
            })
            let numbers = try await client.readToEnd(of: NoteWritten.topic).map { try EventEnvelope<NoteWritten>(record: $0).payload.number }
            #expect(Set(numbers) == Set(0..<20), "every event emitted on the full disk is published")
            running.cancel()
            try await running.value
        }

        /// Seconds of ``theDiskFillingAndFreeingUnderLoadLosesNothing()``: `SPOOL_DISK_SOAK_SECONDS`
        /// (default 15; `scripts/disk-fault-soak.sh 300` runs five minutes and prints the figures).
        static let soakSeconds = ProcessInfo.processInfo.environment["SPOOL_DISK_SOAK_SECONDS"].flatMap { Int($0) } ?? 15

        /// The soak: three producers (each its own connection) and a consumer group of two publish
        /// and read a 3-partition topic while the disk fills and frees every second or two; then
        /// kill -9 and restart. Every acknowledged record is stored once where its ack said and
        /// was delivered to the group; every failed one says why; none is lost. Prints the figures.
        @Test(.timeLimit(.minutes(30)))
        func theDiskFillingAndFreeingUnderLoadLosesNothing() async throws {
            // Room for what the producers store (about 1 MB/s here) plus the filler: a tmpfs lives in memory.
            let megabytes = 16 + 2 * Self.soakSeconds
            let filesystem = try SmallFilesystem(.tmpfs, megabytes: megabytes)
            defer { filesystem.unmount() }
            let daemon = try await Daemon.start(dataDirectory: "\(filesystem.path)/data")
            defer { daemon.cleanUp() }
            let admin = try await daemon.makeClient()
            defer { admin.close() }
            try await admin.createTopic(Self.topic, partitions: 3)
            let outcomes = Outcomes()
            let seen = Seen()
            let clock = ContinuousClock()
            let end = clock.now + .seconds(Self.soakSeconds)
            var fills = 0

            let consumers = (0..<2).map { _ in
                Task {
                    let client = try await daemon.makeClient()
                    defer { client.close() }
                    let consumer = try Consumer(client: client, group: "soak", topics: [Self.topic],
                                                logger: Logger(label: "spool.test.consumer", factory: { _ in SwiftLogNoOpLogHandler() }))
                    for try await record in consumer {
                        let value = String(decoding: record.value, as: UTF8.self)
                        let done = seen.values.withLock { seen in
                            seen.insert(value)
                            return Task.isCancelled
                        }
                        if done { break }
                    }
                    await consumer.close()
                }
            }
            let producers = (0..<3).map { number in
                Task {
                    let client = try await daemon.makeClient()
                    defer { client.close() }
                    let producer = try Self.producer(client)
                    var round = 0
                    while clock.now < end {
                        await outcomes.send(Self.values("p\(number)-r\(round)", 300), to: Self.topic, through: producer)
                        round += 1
                    }
                    try await producer.close()
                }
            }
            while clock.now < end {
                try filesystem.fill(leaving: 32 << 10)
                fills += 1
                // Most full spells are shorter than the producers' delivery timeout (their retries
                // then succeed); every third is longer, so records may also fail for good (not
                // always: space a failed append gives back can let a smaller batch through).
                try await Task.sleep(for: .milliseconds(fills % 3 == 0 ? 5_000 : Int.random(in: 500...2000)))
                try filesystem.free()
                try await Task.sleep(for: .milliseconds(Int.random(in: 500...2000)))
            }
            for producer in producers { try await producer.value }

            let acknowledged = outcomes.acknowledged
            let failed = outcomes.failed
            let deadline = clock.now + .seconds(60)
            while clock.now < deadline, !seen.values.withLock({ acknowledged.keys.allSatisfy($0.contains) }) {
                try await Task.sleep(for: .milliseconds(100))
            }
            for consumer in consumers { consumer.cancel() }
            let undelivered = seen.values.withLock { seen in acknowledged.keys.filter { !seen.contains($0) }.count }
            #expect(undelivered == 0, "every acknowledged record reaches the group")

            try await daemon.kill9()
            try await daemon.start()
            let values = Set(try await Self.checkStored(daemon, acknowledged: acknowledged, partitions: 3))
            let unexplained = failed.values.filter { !$0.contains("the disk is full") }
            #expect(unexplained.isEmpty, "every failure says why: \(Set(unexplained).prefix(3))")
            let inDoubt = failed.filter { $0.value.contains("may have stored it") }
            _ = Self.storedInDoubt(failed, among: values)
            let lost = acknowledged.keys.filter { !values.contains($0) }.count
            #expect(lost == 0)
            let faults = daemon.runs[0].stderr.text.split(separator: "\n").filter { $0.contains("the disk is full: produces to this partition are refused") }
            // The broker refused writes (the disk filled) and records were stored; records that
            // failed for good are a figure, not a given (the full-disk test asserts that path).
            #expect(acknowledged.count > 0 && faults.count > 0, "the disk filled while records were stored")
            print("""
                disk-fault soak (\(Self.soakSeconds) s, tmpfs \(megabytes) MiB, fsync always, 3 producers, group of 2, \(fills) fills): \
                \(faults.count) full-disk spells logged by spoold, \(acknowledged.count) acknowledged, \(failed.count) failed with the cause named \
                (\(inDoubt.count) of them in doubt, \(inDoubt.keys.filter(values.contains).count) of those stored), \
                \(lost) lost, \(undelivered) acknowledged but not delivered
                """)
        }
    }
}
