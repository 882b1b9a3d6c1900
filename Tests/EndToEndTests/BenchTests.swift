import Foundation
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// `spool bench` against a real `spoold`: every section runs and reports numbers, the produce
    /// section really stores what it says, bad options are usage errors, and raw needs no broker.
    /// No figure is checked against a threshold: these machines are small and shared.
    @Suite struct BenchTests {
        /// The CSV columns, in order.
        static let columns = [
            "section", "case", "record_bytes", "runs", "records", "seconds", "records_per_second", "megabytes_per_second",
            "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "vs_raw", "notes",
        ]

        @Test(.timeLimit(.minutes(4)), arguments: [(partitions: 1, producers: 1), (partitions: 3, producers: 2)])
        func everySectionReportsPositiveFiguresAndProduceStoresEveryRecord(shape: (partitions: Int, producers: Int)) async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-bench")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let result = try await runSpool(["bench", "all", "--broker", daemon.endpoint, "--count", "2000", "--latency-count", "500", "--runs", "1",
                                             "--round-trips", "200", "--syncs", "50", "--disk-directory", directory.path,
                                             "--csv", "--partitions", "\(shape.partitions)", "--producers", "\(shape.producers)"],
                                            timeout: .seconds(180))
            #expect(result.termination == .exited(0), "\(result)")
            let rows = try Self.parseCSV(result.stdoutText)
            try #require(rows.first == Self.columns, "CSV header: \(rows.first ?? [])")
            let records = rows.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(Self.columns, $0)) }
            #expect(rows.dropFirst().allSatisfy { $0.count == Self.columns.count }, "rows with a wrong number of fields: \(rows)")
            #expect(records.map { $0["section"] ?? "" } == ["produce", "consume", "latency", "request", "raw", "rtt", "disk", "wakeup"], "\(result.stdoutText)")

            func positive(_ row: [String: String]?, _ column: String, sourceLocation: SourceLocation = #_sourceLocation) {
                let value = row?[column].flatMap(Double.init)
                #expect(value.map { $0 > 0 } == true, "\(row?["section"] ?? "?") \(column) is \(row?[column] ?? "missing")",
                        sourceLocation: sourceLocation)
            }
            let bySection = Dictionary(records.map { ($0["section"] ?? "", $0) }, uniquingKeysWith: { first, _ in first })
            for section in ["produce", "consume", "latency", "request", "raw", "rtt", "disk"] {
                for column in ["record_bytes", "runs", "records", "seconds", "records_per_second", "megabytes_per_second"] {
                    positive(bySection[section], column)
                }
                #expect(bySection[section]?["record_bytes"] == "100")
            }
            #expect(bySection["produce"]?["records"] == "2000" && bySection["consume"]?["records"] == "2000" && bySection["raw"]?["records"] == "2000")
            #expect(bySection["latency"]?["records"] == "500")
            #expect(bySection["request"]?["records"] == "200" && bySection["rtt"]?["records"] == "200" && bySection["disk"]?["records"] == "50")
            for column in ["runs", "records", "seconds", "records_per_second"] { positive(bySection["wakeup"], column) }
            #expect(bySection["wakeup"]?["records"] == "200", "one hand-off per round trip asked for")
            for section in ["latency", "request", "rtt", "disk", "wakeup"] {
                for column in ["p50_us", "p90_us", "p99_us", "p999_us", "max_us"] { positive(bySection[section], column) }
            }
            positive(bySection["produce"], "vs_raw")
            for goal in ["produce throughput is", "end-to-end p50 is", "durable request/response is", "Budget: request p50"] {
                #expect(result.stderr.contains(goal), "the goal lines are missing: \(result.stderr)")
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).allSatisfy { !$0.hasPrefix(".spool-bench-disk") },
                    "the disk section removes its scratch file")

            // The produce topic holds exactly the records it reported; the latency topic its own.
            let client = try await daemon.makeClient()
            defer { client.close() }
            let benchTopics = try await client.topics().filter { $0.name.hasPrefix("bench-") }
            let produceTopics = benchTopics.filter { !$0.name.hasSuffix("-latency") && !$0.name.hasSuffix("-request") }
            let latencyTopics = benchTopics.filter { $0.name.hasSuffix("-latency") }
            let requestTopics = benchTopics.filter { $0.name.hasSuffix("-request") }
            try #require(produceTopics.count == 1 && latencyTopics.count == 1 && requestTopics.count == 1, "bench topics: \(benchTopics.map(\.name))")
            // 200 measured requests plus one that warmed up the producer.
            #expect(requestTopics[0].partitions.reduce(Int64(0)) { $0 + $1.latestOffset - $1.earliestOffset } == 201)
            #expect(produceTopics[0].partitions.count == shape.partitions)
            var stored: Int64 = 0
            for partition in produceTopics[0].partitions {
                stored += try await client.offset(of: produceTopics[0].name, partition: partition.partition, .latest)
                    - client.offset(of: produceTopics[0].name, partition: partition.partition, .earliest)
            }
            #expect(stored == 2000)
            // 500 measured records plus one priming record per partition.
            let latencyStored = latencyTopics[0].partitions.reduce(Int64(0)) { $0 + $1.latestOffset - $1.earliestOffset }
            #expect(latencyStored == Int64(500 + shape.partitions))
        }

        @Test(.timeLimit(.minutes(4)), arguments: [
            (["produce"], ["produce"]), (["consume"], ["produce", "consume"]),
            (["e2e", "--latency-count", "300", "--round-trips", "100", "--syncs", "20"], ["latency", "rtt", "disk", "wakeup"]),
            (["request", "--round-trips", "100", "--syncs", "20"], ["request", "rtt", "disk", "wakeup"]),
            (["wakeup", "--round-trips", "100"], ["wakeup"]),
        ])
        func eachSubcommandRunsItsOwnSections(arguments: [String], sections: [String]) async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-bench-sub")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let result = try await runSpool(["bench"] + arguments + ["--broker", daemon.endpoint, "--count", "1000", "--runs", "1", "--csv"],
                                            timeout: .seconds(180))
            #expect(result.termination == .exited(0), "\(result)")
            let rows = try Self.parseCSV(result.stdoutText)
            try #require(rows.first == Self.columns, "CSV header: \(rows.first ?? [])")
            #expect(rows.dropFirst().map { $0.first ?? "" } == sections, "\(result.stdoutText)")
            #expect(rows.dropFirst().allSatisfy { Double($0[5]).map { $0 > 0 } == true }, "seconds must be positive: \(result.stdoutText)")
        }

        @Test(.timeLimit(.minutes(2)), arguments: [
            (["--size", "0"], "--size"), (["--partitions", "0"], "--partitions"), (["--fsync", "sometimes"], "--fsync"),
            (["--section", "nope"], "--section"), (["--count", "0"], "--count"), (["--rate", "0"], "--rate"),
            (["--runs", "0"], "--runs"), (["--batch-bytes", "12"], "--batch-bytes"), (["--linger", "-1"], "--linger"),
            (["--partitions", "1001"], "--partitions"), (["--section", "consume"], "--section"), (["--raw", "--section", "raw"], "--raw"),
            (["--size", "4", "--section", "latency"], "--size"), (["--round-trips", "0"], "--round-trips"), (["--syncs", "0"], "--syncs"),
            (["--disk-directory", "/nonexistent/spool", "--section", "disk"], "--disk-directory"),
        ])
        func badOptionsAreUsageErrorsNamingTheOption(arguments: [String], option: String) async throws {
            // Nothing listens there: a usage error must come before any connection attempt.
            let result = try await runSpool(["bench", "--broker", "tcp://127.0.0.1:\(try freeLoopbackPort())"] + arguments, timeout: .seconds(30))
            #expect(result.termination == .exited(64), "\(arguments): \(result)")
            let first = result.stderrLines.first ?? ""
            #expect(first.hasPrefix("Error: ") && first.contains(option), "\(arguments): \(result.stderr)")
        }

        @Test(.timeLimit(.minutes(2)), arguments: [["raw"], ["--raw"]])
        func rawRunsWithoutABroker(spelling: [String]) async throws {
            let nowhere = "tcp://127.0.0.1:\(try freeLoopbackPort())"
            let result = try await runSpool(["bench"] + spelling + ["--count", "10000", "--runs", "1", "--broker", nowhere], timeout: .seconds(60))
            #expect(result.termination == .exited(0), "\(result)")
            let tableRows = result.stdoutLines.filter { $0.hasPrefix("| raw ") }
            #expect(tableRows.count == 1, "\(result.stdoutText)")
            #expect(tableRows.first?.contains("10,000") == true, "\(result.stdoutText)")
            #expect(result.stdoutText.contains("Command: `spool bench \(spelling[0]) --count 10000 --runs 1"), "\(result.stdoutText)")
            #expect(result.stdoutText.contains("Load average"), "\(result.stdoutText)")
        }

        /// `spool bench clients` with 20 consumers: both sections run, every consumer gets every
        /// record (the run fails otherwise), the latency figures parse, and the broker's RSS and CPU
        /// are measured (its pid found from the port it listens on).
        @Test(.timeLimit(.minutes(4)))
        func clientsReportsEveryDeliveryAndTheBrokersCost() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-bench-clients")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let result = try await runSpool(["bench", "clients", "--broker", daemon.endpoint, "--clients", "20", "--records", "200", "--rate", "1000",
                                             "--runs", "1", "--idle-seconds", "0.5", "--csv"], timeout: .seconds(180))
            #expect(result.termination == .exited(0), "\(result)")
            let rows = try Self.parseCSV(result.stdoutText)
            let columns = try #require(rows.first)
            #expect(columns.prefix(7) == ["section", "case", "clients", "runs", "records", "deliveries", "records_per_second"], "\(columns)")
            let records = rows.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(columns, $0)) }
            #expect(records.map { $0["section"] ?? "" } == ["fan-out", "spread"], "\(result.stdoutText)")
            let bySection = Dictionary(records.map { ($0["section"] ?? "", $0) }, uniquingKeysWith: { first, _ in first })
            // Fan-out: every record to all 20 consumers; spread: each record to the one consumer of its partition.
            #expect(bySection["fan-out"]?["deliveries"] == "4000" && bySection["spread"]?["deliveries"] == "200", "\(result.stdoutText)")
            for section in ["fan-out", "spread"] {
                let row = bySection[section] ?? [:]
                #expect(row["clients"] == "20" && row["records"] == "200")
                for column in ["records_per_second", "last_p50_us", "last_p99_us", "last_max_us", "delivery_p50_us", "delivery_p99_us", "delivery_max_us"] {
                    #expect(row[column].flatMap(Double.init).map { $0 > 0 } == true, "\(section) \(column) is \(row[column] ?? "missing")")
                }
                let last = row["last_p99_us"].flatMap(Double.init) ?? 0, delivery = row["delivery_p99_us"].flatMap(Double.init) ?? .infinity
                #expect(last >= delivery, "\(section): the last consumer cannot be earlier than the deliveries: \(row)")
                // Memory can shrink between two readings; CPU cannot be negative.
                for column in ["broker_rss_per_client_bytes", "broker_rss_per_parked_fetch_bytes", "broker_rss_per_client_active_bytes"] {
                    #expect(row[column].flatMap(Double.init) != nil, "\(section) \(column) is \(row[column] ?? "missing")")
                }
                for column in ["broker_cpu_per_client_idle_us_per_s", "broker_cpu_per_client_active_us_per_s", "broker_cpu_per_delivery_us"] {
                    #expect(row[column].flatMap(Double.init).map { $0 >= 0 } == true, "\(section) \(column) is \(row[column] ?? "missing")")
                }
            }
            #expect(bySection["spread"]?["broker_rss_per_partition_bytes"].flatMap(Double.init) != nil, "\(result.stdoutText)")
            #expect(result.stderr.contains("Broker RSS and CPU: the spoold listening on port \(daemon.port)"), "\(result.stderr)")

            // The topics hold the priming records and the measured ones, nothing else.
            let client = try await daemon.makeClient()
            defer { client.close() }
            let topics = try await client.topics().filter { $0.name.hasPrefix("bench-") }
            let stored = Dictionary(topics.map { ($0.name.hasSuffix("-spread") ? "spread" : "fan-out", $0) }, uniquingKeysWith: { first, _ in first })
            #expect(stored["fan-out"]?.partitions.map(\.latestOffset) == [201])
            #expect(stored["spread"]?.partitions.count == 20 && stored["spread"]?.partitions.allSatisfy { $0.latestOffset == 11 } == true)
        }

        /// `spool bench fairness` on a small backlog: the produce rows alone and with the reader,
        /// the reader's row, and the ratio line.
        @Test(.timeLimit(.minutes(4)))
        func fairnessReportsProducesAloneAndBesideTheReader() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-bench-fairness")
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"))
            defer { daemon.cleanUp() }
            let result = try await runSpool(["bench", "fairness", "--broker", daemon.endpoint, "--backlog-mib", "8", "--produces", "100", "--runs", "1", "--csv"],
                                            timeout: .seconds(180))
            #expect(result.termination == .exited(0), "\(result)")
            let rows = try Self.parseCSV(result.stdoutText)
            try #require(rows.first == Self.columns, "CSV header: \(rows.first ?? [])")
            let records = rows.dropFirst().map { Dictionary(uniqueKeysWithValues: zip(Self.columns, $0)) }
            #expect(records.map { $0["section"] ?? "" } == ["fairness", "fairness", "backlog"], "\(result.stdoutText)")
            for row in records.prefix(2) {
                #expect(row["records"] == "100")
                for column in ["p50_us", "p99_us", "max_us"] {
                    #expect(row[column].flatMap(Double.init).map { $0 > 0 } == true, "\(column) is \(row[column] ?? "missing")")
                }
            }
            #expect(records.last?["megabytes_per_second"].flatMap(Double.init).map { $0 > 0 } == true, "\(result.stdoutText)")
            #expect(result.stderr.contains("Fairness: small produce p99") && result.stderr.contains("Bound: one fetch reply"), "\(result.stderr)")
        }

        @Test(.timeLimit(.minutes(2)), arguments: [
            (["clients", "--clients", "0"], "--clients"), (["clients", "--size", "4"], "--size"), (["clients", "--rate", "0"], "--rate"),
            (["clients", "--section", "spread", "--clients", "50", "--records", "10"], "--records"), (["clients", "--section", "ring"], "--section"),
            (["fairness", "--backlog-mib", "0"], "--backlog-mib"), (["fairness", "--fetch-bytes", "10"], "--fetch-bytes"),
        ])
        func badClientsAndFairnessOptionsAreUsageErrors(arguments: [String], option: String) async throws {
            let result = try await runSpool(["bench"] + arguments + ["--broker", "tcp://127.0.0.1:\(try freeLoopbackPort())"], timeout: .seconds(30))
            #expect(result.termination == .exited(64), "\(arguments): \(result)")
            let first = result.stderrLines.first ?? ""
            #expect(first.hasPrefix("Error: ") && first.contains(option), "\(arguments): \(result.stderr)")
        }

        /// Parses RFC 4180 CSV: fields separated by commas, quoted when they hold commas or quotes.
        static func parseCSV(_ text: String) throws -> [[String]] {
            var rows: [[String]] = []
            for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
                var fields: [String] = []
                var field = ""
                var quoted = false
                var characters = line.makeIterator()
                var pending: Character? = characters.next()
                while let character = pending {
                    pending = characters.next()
                    if quoted {
                        if character == "\"" {
                            if pending == "\"" {
                                field.append("\"")
                                pending = characters.next()
                            } else {
                                quoted = false
                            }
                        } else {
                            field.append(character)
                        }
                    } else if character == "\"" {
                        quoted = true
                    } else if character == "," {
                        fields.append(field)
                        field = ""
                    } else {
                        field.append(character)
                    }
                }
                if quoted { throw HarnessError("unterminated quote in CSV line: \(line)") }
                fields.append(field)
                rows.append(fields)
            }
            return rows
        }
    }
}
