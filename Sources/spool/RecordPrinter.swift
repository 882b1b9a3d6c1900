import Foundation
import Spool

/// Writes records to standard output in the chosen format, one line each. The caller flushes
/// whenever it is about to wait, so a pipe sees each record as it arrives.
struct RecordPrinter {
    let format: OutputFormat
    /// Text lines start with `partition/offset` instead of the offset (records of many partitions).
    var showsPartition = false

    /// Pushes buffered output to standard output.
    func flush() { fflush(nil) }

    func print(_ record: SpoolRecord) {
        switch format {
        case .text:
            let key = record.key.map { Self.text($0) } ?? ""
            let position = showsPartition ? "\(record.partition)/\(record.offset)" : "\(record.offset)"
            Swift.print("\(position)\t\(key)\t\(Self.text(record.value))")
        case .json:
            Swift.print(Self.json(record))
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
