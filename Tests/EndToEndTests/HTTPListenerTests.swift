import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Spool
import SpoolTesting
import Testing

extension EndToEndTests {
    /// spoold's HTTP listener on a real process: metrics that count what was sent, health, the
    /// admin API acting through the broker, and the token and read-only guards.
    @Suite struct HTTPListenerTests {
        /// One HTTP exchange's status and body.
        struct Answer {
            var status: Int
            var body: Data
            var text: String { String(decoding: body, as: UTF8.self) }
            func json() throws -> [String: Any] {
                try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any], "not a JSON object: \(text)")
            }
        }

        /// `method path` on `port`, with `body` (JSON) and `token` when given.
        static func request(_ port: Int, _ path: String, method: String = "GET", body: String? = nil, token: String? = nil) async throws -> Answer {
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
            request.httpMethod = method
            request.timeoutInterval = 30
            if let body {
                request.httpBody = Data(body.utf8)
                request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            }
            if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
            let (data, response) = try await URLSession.shared.data(for: request)
            return Answer(status: (response as? HTTPURLResponse)?.statusCode ?? -1, body: data)
        }

        /// The samples of `/metrics`: `name{labels}` → value. Fails the test on any line that is
        /// not Prometheus text (a comment, or a name, optional labels and a number), or on a
        /// sample whose family has no `# TYPE` line.
        static func scrape(_ port: Int) async throws -> [String: Double] {
            let answer = try await request(port, "/metrics")
            try #require(answer.status == 200, "\(answer.text)")
            let sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$/
            var samples: [String: Double] = [:]
            var typed: Set<String> = []
            for line in answer.text.split(separator: "\n") {
                if line.hasPrefix("# TYPE ") {
                    typed.insert(String(line.split(separator: " ")[2]))
                    continue
                }
                if line.hasPrefix("#") { continue }
                let match = try #require(try sample.wholeMatch(in: String(line)), "not Prometheus text: \(line)")
                let family = String(match.1)
                let base = ["_bucket", "_sum", "_count"].reduce(family) { name, suffix in
                    name.hasSuffix(suffix) && typed.contains(String(name.dropLast(suffix.count))) ? String(name.dropLast(suffix.count)) : name
                }
                #expect(typed.contains(base), "\(family) has no # TYPE line")
                samples[family + String(match.2 ?? "")] = Double(match.3)
            }
            return samples
        }

        @Test(.timeLimit(.minutes(3)))
        func metricsCountWhatWasSentAndTheAPIActsThroughTheBroker() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-http")
            let config = directory.appending("spoold.yaml")
            try "http.admin: true\n".write(toFile: config, atomically: true, encoding: .utf8)
            let http = try freeLoopbackPort()
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"),
                                                extraArguments: ["--config", config, "--http-listen", "127.0.0.1:\(http)"])
            defer { daemon.cleanUp() }
            #expect(try await Self.request(http, "/readyz").status == 200)
            #expect(try await Self.request(http, "/healthz").text.contains("\"ok\""))
            let page = try await Self.request(http, "/")
            #expect(page.status == 200 && page.text.contains("<html"), "the console page is served")

            // 500 records in 5 batches, 100 of them keyed "order-7".
            let client = try await daemon.makeClient()
            defer { client.close() }
            try await client.createTopic("metered")
            for batch in 0..<5 {
                let records = (0..<100).map { index in
                    OutgoingRecord(key: Array((index % 5 == 0 ? "order-7" : "other-\(index)").utf8), value: Array("{\"batch\":\(batch),\"i\":\(index)}".utf8))
                }
                _ = try await client.publish(to: "metered", records: records)
            }
            let read = try await client.readToEnd(of: "metered")
            #expect(read.count == 500)
            try await client.commitOffsets("audit", [CommittedOffset(partition: TopicPartition(topic: "metered", partition: 0), offset: 200)])

            var metrics: [String: Double] = [:]
            let lagSeen = try await eventually(timeout: .seconds(20)) {
                metrics = try await Self.scrape(http)
                return metrics["spool_consumer_lag{group=\"audit\",topic=\"metered\",partition=\"0\"}"] == 300
            }
            #expect(lagSeen, "lag = log end 500 - committed 200, refreshed each second: \(metrics.filter { $0.key.contains("lag") })")
            #expect(metrics["spool_records_in_total{topic=\"metered\"}"] == 500)
            #expect(metrics["spool_records_out_total{topic=\"metered\"}"] == 500)
            #expect((metrics["spool_bytes_in_total{topic=\"metered\"}"] ?? 0) > 500 * 20, "every batch's bytes are counted")
            #expect((metrics["spool_request_duration_seconds_count{operation=\"produce\"}"] ?? 0) >= 5)
            #expect((metrics["spool_fsync_duration_seconds_count"] ?? 0) >= 5, "fsync: always syncs each batch")
            #expect(metrics["spool_sync_records_sum"] == 500, "every record was covered by a sync, once")
            #expect(metrics["spool_partition_writes_refused{topic=\"metered\",partition=\"0\"}"] == 0)
            #expect(metrics["spool_log_end_offset{topic=\"metered\",partition=\"0\"}"] == 500)
            #expect((metrics["spool_connected_clients"] ?? 0) >= 1)
            #expect((metrics["spool_disk_free_bytes"] ?? 0) > 0)

            // The admin API: topics, records by key, a group's lag, a reset planned then done.
            let topics = try await Self.request(http, "/api/topics")
            #expect(topics.text.contains("\"name\":\"metered\"") && topics.text.contains("\"logEndOffset\":500"), "\(topics.text)")
            let keyed = try await Self.request(http, "/api/topics/metered/records?key=order-7&limit=1000")
            let keyedRecords = try #require(try keyed.json()["records"] as? [[String: Any]])
            #expect(keyedRecords.count == 100, "the key index finds the key's 100 records")
            let value = try #require(keyedRecords.first?["value"] as? [String: Any])
            #expect((value["json"] as? [String: Any])?["batch"] as? Int == 0, "a JSON value comes parsed: \(value)")
            let group = try await Self.request(http, "/api/groups/audit").json()
            #expect((group["partitions"] as? [[String: Any]])?.first?["lag"] as? Int == 300)
            let plan = try await Self.request(http, "/api/groups/audit/reset", method: "POST", body: "{\"topic\":\"metered\",\"to\":\"shift\",\"value\":-50}")
            #expect(plan.status == 200 && plan.text.contains("\"newOffset\":150") && plan.text.contains("\"executed\":false"), "\(plan.text)")
            #expect(try await client.committedOffsets("audit").first?.offset == 200, "a dry run changes nothing")
            let done = try await Self.request(http, "/api/groups/audit/reset", method: "POST",
                                              body: "{\"topic\":\"metered\",\"to\":\"offset\",\"value\":450,\"execute\":true}")
            #expect(done.status == 200 && done.text.contains("\"executed\":true"), "\(done.text)")
            #expect(try await client.committedOffsets("audit").first?.offset == 450)
            let bad = try await Self.request(http, "/api/groups/audit/reset", method: "POST", body: "{\"topic\":\"metered\",\"to\":\"sideways\"}")
            #expect(bad.status == 400 && bad.text.contains("earliest, latest, offset, time or shift"), "\(bad.text)")
            let missing = try await Self.request(http, "/api/topics/absent")
            #expect(missing.status == 404 && missing.text.contains("absent"), "\(missing.text)")
            try await client.createTopic("busy")
            let member = try Consumer(client: client, group: "live", topics: ["busy"])
            _ = await eventually { !member.assignment.isEmpty }
            let live = try await Self.request(http, "/api/groups/live/reset", method: "POST", body: "{\"topic\":\"busy\",\"to\":\"earliest\"}")
            #expect(live.status == 409 && live.text.contains("live member"), "a group with members is not reset: \(live.text)")
            await member.close()
        }

        @Test(.timeLimit(.minutes(3)))
        func aTokenGuardsTheListenerOffLoopbackAndTheConsoleIsReadOnlyByDefault() async throws {
            let directory = try TemporaryDirectory(prefix: "spool-e2e-http-token")
            let http = try freeLoopbackPort()
            let refused = try await runSpoold(["--data-dir", directory.appending("data"), "--listen", "tcp://127.0.0.1:\(try freeLoopbackPort())",
                                               "--http-listen", "0.0.0.0:\(http)"])
            #expect(refused.termination == .exited(1) && refused.stderr.contains("http.token.file"), "\(refused.stderr)")

            let token = "t0ken-\(UUID().uuidString)"
            try "\(token)\n".write(toFile: directory.appending("http.token"), atomically: true, encoding: .utf8)
            let config = directory.appending("spoold.yaml")
            try "http.token.file: http.token\n".write(toFile: config, atomically: true, encoding: .utf8)
            let daemon = try await Daemon.start(dataDirectory: directory.appending("data"),
                                                extraArguments: ["--config", config, "--http-listen", "0.0.0.0:\(http)"])
            defer { daemon.cleanUp() }
            #expect(try await Self.request(http, "/healthz").status == 200, "health needs no token")
            let anonymous = try await Self.request(http, "/api/status")
            #expect(anonymous.status == 401 && anonymous.text.contains("Authorization: Bearer"), "\(anonymous.text)")
            #expect(try await Self.request(http, "/metrics").status == 401)
            #expect(try await Self.request(http, "/api/status", token: "wrong-\(token)").status == 401)
            let status = try await Self.request(http, "/api/status", token: token).json()
            #expect(status["admin"] as? Bool == false && status["ready"] as? Bool == true, "\(status)")
            let act = try await Self.request(http, "/api/groups/g/reset", method: "POST", body: "{\"topic\":\"t\",\"to\":\"earliest\",\"execute\":true}", token: token)
            #expect(act.status == 403 && act.text.contains("http.admin"), "\(act.text)")
            let replay = try await Self.request(http, "/api/dead-letters/t.dlq/replay", method: "POST", body: "{}", token: token)
            #expect(replay.status == 403, "\(replay.text)")
        }
    }
}
