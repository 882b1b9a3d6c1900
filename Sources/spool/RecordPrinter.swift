import ArgumentParser
import Foundation
import Spool

/// How records are printed.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    /// `offset<TAB>key<TAB>value` (or a `--template`), one line per record.
    case text
    /// One JSON object per line, lossless (non-UTF-8 bytes as base64).
    case json
    /// The value's bytes exactly as stored, then a newline.
    case raw
}

/// Options that choose how records are printed.
struct OutputOptions: ParsableArguments {
    @Option(help: "Output format: text (offset, key, value separated by tabs), json (one object per line, binary as base64) or raw (the value's bytes, then a newline).")
    var format: OutputFormat = .text

    @Option(help: ArgumentHelp(
        "Text line template with {topic} {partition} {offset} {timestamp} (ms) {time} (ISO 8601) {key} {value} {headers} {header:NAME}; \\t and \\n are a tab and a newline.",
        valueName: "template"))
    var template: String?

    func validate() throws {
        if template != nil && format != .text { throw ValidationError("--template applies to --format text only") }
        if let template { _ = try RecordTemplate(template) }
    }

    /// A printer for these options; text lines show `partition/offset` when `showsPartition`.
    func printer(showsPartition: Bool) throws -> RecordPrinter {
        RecordPrinter(format: format, template: try template.map(RecordTemplate.init), showsPartition: showsPartition,
                      colours: Terminal.colours(STDOUT_FILENO))
    }
}

/// Writes records to standard output in the chosen format, one line each. The caller flushes
/// whenever it is about to wait, so a pipe sees each record as it arrives.
struct RecordPrinter {
    let format: OutputFormat
    /// A text line's template; nil for the default `offset<TAB>key<TAB>value`.
    var template: RecordTemplate?
    /// Default text lines start with `partition/offset` instead of the offset (records of many partitions).
    var showsPartition = false
    /// Default text lines dim the position and colour the key (standard output is a terminal).
    var colours = false

    /// Pushes buffered output to standard output.
    func flush() { fflush(nil) }

    func print(_ record: SpoolRecord) {
        switch format {
        case .text:
            if let template { return Swift.print(template.render(record)) }
            let key = record.key.map { Self.text($0) } ?? ""
            let position = showsPartition ? "\(record.partition)/\(record.offset)" : "\(record.offset)"
            Swift.print("\(Terminal.paint(position, .dim, enabled: colours))\t\(Terminal.paint(key, .cyan, enabled: colours && !key.isEmpty))\t\(Self.text(record.value))")
        case .json:
            Swift.print(Self.json(record))
        case .raw:
            var bytes = record.value
            bytes.append(10)
            FileHandle.standardOutput.write(Data(bytes))
        }
    }

    /// Bytes as text: UTF-8 as is, with tabs, newlines and invalid bytes escaped so one record stays one line.
    static func text(_ bytes: [UInt8]) -> String {
        let decoded = String(decoding: bytes, as: UTF8.self)
        guard decoded.utf8.elementsEqual(bytes), !bytes.contains(where: { $0 == 9 || $0 == 10 || $0 == 13 }) else {
            return bytes.map { byte in
                switch byte {
                case 9: "\\t"
                case 10: "\\n"
                case 13: "\\r"
                case 0x20..<0x7f where byte != UInt8(ascii: "\\"): String(UnicodeScalar(byte))
                default: "\\x" + String(byte, radix: 16).leftPadded(to: 2)
                }
            }.joined()
        }
        return decoded
    }

    /// One JSON object: `topic`, `partition`, `offset`, `timestamp` (ms), `key`, `headers`, `value`.
    /// A byte field that is not valid UTF-8 is written as `keyBase64` / `valueBase64` instead.
    static func json(_ record: SpoolRecord) -> String {
        var fields = [
            "\"topic\":\(quoted(record.topic))", "\"partition\":\(record.partition)",
            "\"offset\":\(record.offset)", "\"timestamp\":\(record.timestamp)",
        ]
        if let key = record.key { fields.append(bytesField("key", key)) }
        if !record.headers.isEmpty {
            let headers = record.headers.map { "{\"name\":\(quoted($0.name)),\(bytesField("value", $0.value))}" }
            fields.append("\"headers\":[\(headers.joined(separator: ","))]")
        }
        fields.append(bytesField("value", record.value))
        return "{\(fields.joined(separator: ","))}"
    }

    private static func bytesField(_ name: String, _ bytes: [UInt8]) -> String {
        if let string = String(validating: bytes, as: UTF8.self) { return "\"\(name)\":\(quoted(string))" }
        return "\"\(name)Base64\":\"\(Data(bytes).base64EncodedString())\""
    }

    private static func quoted(_ string: String) -> String {
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += "\\u" + String(scalar.value, radix: 16).leftPadded(to: 4)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

/// A parsed `--template`: literal text and `{field}` placeholders.
struct RecordTemplate {
    private enum Part {
        case literal(String)
        case topic, partition, offset, timestamp, time, key, value, headers
        case header(String)
    }

    private let parts: [Part]

    /// Parses `template`; an unknown `{field}` or an unclosed `{` is a usage error naming it.
    init(_ template: String) throws {
        var parts: [Part] = []
        var rest = Substring(template.replacingOccurrences(of: "\\t", with: "\t").replacingOccurrences(of: "\\n", with: "\n"))
        while let open = rest.firstIndex(of: "{") {
            parts.append(.literal(String(rest[..<open])))
            guard let close = rest[open...].firstIndex(of: "}") else { throw ValidationError("--template: '{' without '}' in \(template)") }
            let name = String(rest[rest.index(after: open)..<close])
            switch name {
            case "topic": parts.append(.topic)
            case "partition": parts.append(.partition)
            case "offset": parts.append(.offset)
            case "timestamp": parts.append(.timestamp)
            case "time": parts.append(.time)
            case "key": parts.append(.key)
            case "value": parts.append(.value)
            case "headers": parts.append(.headers)
            case _ where name.hasPrefix("header:"): parts.append(.header(String(name.dropFirst("header:".count))))
            default: throw ValidationError("--template: unknown field {\(name)}; known: topic partition offset timestamp time key value headers header:NAME")
            }
            rest = rest[rest.index(after: close)...]
        }
        parts.append(.literal(String(rest)))
        self.parts = parts
    }

    /// The line for `record` (without the newline); bytes shown as ``RecordPrinter/text(_:)`` does.
    func render(_ record: SpoolRecord) -> String {
        parts.map { part in
            switch part {
            case .literal(let text): text
            case .topic: record.topic
            case .partition: String(record.partition)
            case .offset: String(record.offset)
            case .timestamp: String(record.timestamp)
            case .time: EventMetadata.formatTime(record.timestamp)
            case .key: record.key.map { RecordPrinter.text($0) } ?? ""
            case .value: RecordPrinter.text(record.value)
            case .headers: record.headers.map { "\($0.name)=\(RecordPrinter.text($0.value))" }.joined(separator: ",")
            case .header(let name): record.headers.last { $0.name == name }.map { RecordPrinter.text($0.value) } ?? ""
            }
        }.joined()
    }
}
