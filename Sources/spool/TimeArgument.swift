import ArgumentParser
import Foundation
import Spool

/// A point in time given on the command line as ISO 8601 (`2026-11-21T10:00:00Z`, with or
/// without milliseconds or an offset), or as an age relative to now (`90s`, `10m`, `2h`, `1d`).
struct TimeArgument: ExpressibleByArgument, Sendable {
    /// Milliseconds since the Unix epoch.
    let milliseconds: Int64

    init?(argument: String) {
        if let age = Self.age(argument) {
            milliseconds = EventMetadata.now() - age
        } else if let time = EventMetadata.parseTime(argument) {
            milliseconds = time
        } else {
            return nil
        }
    }

    /// `argument` as milliseconds when it is a number followed by `ms`, `s`, `m`, `h` or `d`.
    static func age(_ argument: String) -> Int64? {
        let units: [(suffix: String, milliseconds: Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for unit in units where argument.hasSuffix(unit.suffix) {
            guard let number = Int64(argument.dropLast(unit.suffix.count)), number >= 0 else { continue }
            return number.multipliedReportingOverflow(by: unit.milliseconds).overflow ? nil : number * unit.milliseconds
        }
        return nil
    }
}

/// An age on the command line: `90s`, `10m`, `2h`, `1d` (also `500ms`), counted back from now.
struct AgeArgument: ExpressibleByArgument, Sendable {
    /// The moment that far back, in milliseconds since the Unix epoch.
    let milliseconds: Int64

    init?(argument: String) {
        guard let age = TimeArgument.age(argument) else { return nil }
        milliseconds = EventMetadata.now() - age
    }
}
