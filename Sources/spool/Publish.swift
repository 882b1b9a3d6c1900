import ArgumentParser
import Foundation
import Logging
import Spool

/// `spool publish`: records from the argument, standard input, or files.
struct Publish: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish records to a topic.",
        discussion: """
            With VALUE, publishes one record. With --file (repeatable), one record per file, its \
            bytes exactly. Otherwise one record per line of standard input. Many records go \
            through the SDK's idempotent Producer: batched (up to 256 KiB, 5 ms), several batches \
            at once, a lost connection retried without storing a record twice, records with one \
            key kept in order. The command exits 0 only once every record is acknowledged (on disk \
            under fsync: always). A record the broker refuses to store (a full disk) is retried, \
            with a warning on stderr, until --delivery-timeout; then the command says why and \
            exits 1.

            With --if-last-offset N (and --key), every record of the command goes in one batch that \
            the broker appends only if the key's last record is at offset N (none: the key has no \
            record yet): a conditional append, the expected version of an event store. If another \
            writer got there first, nothing is published and the command exits 3, saying the key's \
            current last offset (`spool events TOPIC KEY` prints its records).

            --format json reads the JSON Lines that `spool tail --format json` writes: key or \
            keyBase64, value or valueBase64, headers ([{name, value | valueBase64}]) and \
            timestamp are kept; topic, partition and offset are ignored (the partition follows \
            the key, or --partition). A line that is not such a record stops the command with \
            exit 1 after the lines before it were published; the error names the line.

            Examples:
              spool publish orders '{"id":1}'
              spool publish orders --key order-1 --header source=cli '{"id":1}'
              seq 1 100000 | spool publish numbers
              spool publish images --key logo --file logo.png
              spool publish orders --key order-1 --if-last-offset none '{"event":"placed"}'
              spool publish orders --key order-1 --if-last-offset 41 '{"event":"paid"}'
              spool tail orders --from-beginning --exit-at-end --format json | spool publish orders-copy --format json
            """
    )

    /// What standard input (or VALUE) holds.
    enum InputFormat: String, ExpressibleByArgument, CaseIterable {
        /// Each line is a record's value.
        case text
        /// Each line is a JSON record as `spool tail --format json` writes it.
        case json
    }

    @OptionGroup var connection: ConnectionOptions

    @Argument(help: "Topic to publish to.")
    var topic: String

    @Argument(help: "The record value. Omit to read records from standard input or --file.")
    var value: String?

    @Option(help: "Record key (records with one key keep their order in one partition).")
    var key: String?

    @Option(name: .customLong("header"), help: ArgumentHelp("A header name=value; repeat for more.", valueName: "name=value"))
    var headers: [String] = []

    @Option(help: "Partition to publish to (default: chosen from the key, or round-robin).")
    var partition: Int32?

    @Option(name: .customLong("file"), help: ArgumentHelp("Publish this file's bytes as one record; repeat for more.", valueName: "path"),
            completion: .file())
    var files: [String] = []

    @Option(help: "Input format: text (one value per line) or json (one JSON record per line, as `tail --format json` prints).")
    var format: InputFormat = .text

    @Option(help: ArgumentHelp("Publish everything as one batch, appended only if the key's last record is at this offset (none: the key has no record yet); exit 3 otherwise.",
                               valueName: "offset|none"))
    var ifLastOffset: LastOffsetArgument?

    @Option(help: ArgumentHelp("How long a record the broker does not store (a full disk, a restart) is retried before the command fails.",
                               valueName: "seconds"))
    var deliveryTimeout: Double = 120

    func validate() throws {
        for header in headers where !header.contains("=") {
            throw ValidationError("--header '\(header)' is not name=value")
        }
        if value != nil && !files.isEmpty { throw ValidationError("give either VALUE or --file, not both") }
        guard deliveryTimeout > 0, deliveryTimeout.isFinite else { throw ValidationError("--delivery-timeout must be a positive number of seconds") }
        if ifLastOffset != nil && key == nil { throw ValidationError("--if-last-offset needs --key: the condition is on that key's last record") }
        if ifLastOffset != nil && format == .json { throw ValidationError("--if-last-offset takes text values (VALUE, --file or lines), not --format json") }
        if ifLastOffset != nil && partition != nil { throw ValidationError("--if-last-offset publishes to the key's partition: leave out --partition") }
        if format == .json && (key != nil || !headers.isEmpty || !files.isEmpty) {
            throw ValidationError("--format json takes key and headers from each line: it cannot be combined with --key, --header or --file")
        }
    }

    func run() async throws {
        let parsedHeaders = headers.map { header in
            let name = header.prefix { $0 != "=" }
            return RecordHeader(name: String(name), string: String(header.dropFirst(name.count + 1)))
        }
        let keyBytes = key.map { Array($0.utf8) }
        let contents = files.map { path in
            guard let data = FileManager.default.contents(atPath: path) else { fail("cannot read --file \(path)") }
            return Array(data)
        }
        let client = try await connection.connect(for: topic)
        defer { client.close() }
        try await reportingErrors {
            if let ifLastOffset, let keyBytes {
                let values = value.map { [Array($0.utf8)] } ?? (contents.isEmpty ? Self.readLines() : contents)
                try await publishConditionally(client, key: keyBytes, records: values.map { OutgoingRecord(value: $0, headers: parsedHeaders) },
                                               ifLastOffset: ifLastOffset.offset)
                return
            }
            if let value {
                let record = format == .json ? try JSONRecordLine.parse(value)
                                             : OutgoingRecord(key: keyBytes, value: Array(value.utf8), headers: parsedHeaders)
                let result = try await client.publish(to: topic, partition: partition, records: [record])
                print("\(topic)/\(result.partition) offset \(result.baseOffset) (\(result.durability))")
                return
            }
            let producer = try Producer(client: client, configuration: ProducerConfiguration(deliveryTimeout: .milliseconds(Int64(deliveryTimeout * 1000))),
                                        logger: WarningLogHandler.logger)
            var published = 0
            func send(_ record: OutgoingRecord) async throws(SpoolError) {
                try await producer.enqueue(to: topic, partition: partition, key: record.key, value: record.value,
                                           headers: record.headers, timestamp: record.timestamp)
                published += 1
            }
            if !contents.isEmpty {
                for content in contents { try await send(OutgoingRecord(key: keyBytes, value: content, headers: parsedHeaders)) }
            } else {
                while let line = readLine(strippingNewline: true) {
                    guard format == .json else {
                        try await send(OutgoingRecord(key: keyBytes, value: Array(line.utf8), headers: parsedHeaders))
                        continue
                    }
                    guard !line.allSatisfy(\.isWhitespace) else { continue }
                    do throws(SpoolError) {
                        try await send(try JSONRecordLine.parse(line))
                    } catch {
                        try await producer.close()
                        throw SpoolError(error.code, "line \(published + 1): \(error.message); the \(published) record\(published == 1 ? "" : "s") before it were published")
                    }
                }
            }
            try await producer.close()
            let keyed = format == .json ? "partition by each record's key, round-robin without one" : "the key's partition"
            let partitions = partition.map { "partition \($0)" } ?? (keyBytes == nil && format == .text ? "spread over the partitions" : keyed)
            Terminal.writeError("published \(published) records to \(topic) (\(partitions))\n")
        }
    }
}

extension Publish {
    /// Every line of standard input, as record values.
    static func readLines() -> [[UInt8]] {
        var lines: [[UInt8]] = []
        while let line = readLine(strippingNewline: true) { lines.append(Array(line.utf8)) }
        return lines
    }

    /// Publishes `records` as one conditional batch; exits 3 on a key conflict.
    func publishConditionally(_ client: SpoolClient, key: [UInt8], records: [OutgoingRecord], ifLastOffset expected: Int64?) async throws {
        guard !records.isEmpty else { throw SpoolError(.invalidArgument, "nothing to publish: standard input was empty") }
        let producer = try Producer(client: client, configuration: ProducerConfiguration(deliveryTimeout: .milliseconds(Int64(deliveryTimeout * 1000))),
                                    logger: WarningLogHandler.logger)
        var published: PublishResult?
        var conflict: SpoolError?
        do {
            published = try await producer.send(to: topic, key: key, records: records, ifLastOffsetIs: expected)
        } catch {
            guard error.code == .keyConflict else { throw error }
            conflict = error
        }
        guard let result = published else {
            try? await producer.close()
            let current = conflict?.details["lastOffset"].map { $0 < 0 ? "it has no record" : "its last record is at offset \($0)" } ?? "its last offset is unknown"
            Terminal.writeError("spool: key conflict on \(self.key ?? ""): \(current), the publish expected \(expected.map { "offset \($0)" } ?? "none"); nothing was published\n")
            throw ExitCode(3)
        }
        try await producer.close()
        let last = result.baseOffset + Int64(result.count) - 1
        print("\(topic)/\(result.partition) offset \(result.baseOffset)\(result.count > 1 ? "...\(last)" : "") (\(result.durability)); key \(self.key ?? "")'s last offset is now \(last)")
    }
}

/// `--if-last-offset`: an offset, or `none` for a key without records.
struct LastOffsetArgument: ExpressibleByArgument {
    /// The expected last offset; nil: the key has no record.
    let offset: Int64?

    init?(argument: String) {
        if argument == "none" {
            offset = nil
        } else if let value = Int64(argument), value >= 0 {
            offset = value
        } else {
            return nil
        }
    }
}

/// One line of `spool tail --format json`, read back as a record to publish.
enum JSONRecordLine {
    private struct Line: Decodable {
        struct Header: Decodable {
            var name: String
            var value: String?
            var valueBase64: String?
        }

        var key: String?
        var keyBase64: String?
        var value: String?
        var valueBase64: String?
        var headers: [Header]?
        var timestamp: Int64?
    }

    /// The record `line` describes; throws ``SpoolError/Code/invalidArgument`` saying what is wrong.
    static func parse(_ line: String) throws(SpoolError) -> OutgoingRecord {
        let decoded: Line
        do {
            decoded = try JSONDecoder().decode(Line.self, from: Data(line.utf8))
        } catch {
            throw SpoolError(.invalidArgument, "not a JSON record (\(Self.reason(error)))")
        }
        guard let value = try bytes(decoded.value, decoded.valueBase64, "value") else {
            throw SpoolError(.invalidArgument, "the record has neither value nor valueBase64")
        }
        var headers: [RecordHeader] = []
        for header in decoded.headers ?? [] {
            guard let headerValue = try bytes(header.value, header.valueBase64, "header \(header.name)") else {
                throw SpoolError(.invalidArgument, "header \(header.name) has neither value nor valueBase64")
            }
            headers.append(RecordHeader(name: header.name, value: headerValue))
        }
        return OutgoingRecord(key: try bytes(decoded.key, decoded.keyBase64, "key"), value: value, headers: headers,
                              timestamp: decoded.timestamp)
    }

    private static func bytes(_ text: String?, _ base64: String?, _ what: String) throws(SpoolError) -> [UInt8]? {
        switch (text, base64) {
        case (let text?, nil): return Array(text.utf8)
        case (nil, let base64?):
            guard let data = Data(base64Encoded: base64) else { throw SpoolError(.invalidArgument, "\(what) is not valid base64") }
            return Array(data)
        case (nil, nil): return nil
        case (_?, _?): throw SpoolError(.invalidArgument, "\(what) is given both as text and as base64")
        }
    }

    /// A decoding error in a few words.
    private static func reason(_ error: any Error) -> String {
        switch error as? DecodingError {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? context.debugDescription : "\(path): \(context.debugDescription)"
        case .dataCorrupted(let context): return context.underlyingError.map { "\($0.localizedDescription)" } ?? context.debugDescription
        default: return "\(error)"
        }
    }
}
