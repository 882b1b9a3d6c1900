import Foundation

/// What the CLI knows about where its output goes: colour and progress only on a terminal.
enum Terminal {
    /// ANSI styles the CLI uses.
    enum Style: String {
        case dim = "2", bold = "1", red = "31", green = "32", yellow = "33", cyan = "36", magenta = "35"
    }

    /// True when `descriptor` is a terminal.
    static func isTerminal(_ descriptor: Int32) -> Bool { isatty(descriptor) == 1 }

    /// True when text written to `descriptor` may carry colour: it is a terminal and `NO_COLOR`
    /// (https://no-color.org) is unset or empty.
    static func colours(_ descriptor: Int32) -> Bool {
        isTerminal(descriptor) && (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
    }

    /// `text` wrapped in the escape codes of `style` when `enabled`, else `text` unchanged.
    static func paint(_ text: String, _ style: Style, enabled: Bool) -> String {
        enabled ? "\u{1B}[\(style.rawValue)m\(text)\u{1B}[0m" : text
    }

    /// Writes `text` to standard error as is.
    static func writeError(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}

/// Runs `action` once on the first SIGINT or SIGTERM (instead of the default termination), so a
/// command can stop reading, flush and exit with its own status. Keep the returned sources
/// alive for as long as the handling should last.
func onInterrupt(_ action: @escaping @Sendable () -> Void) -> [any DispatchSourceSignal] {
    [SIGINT, SIGTERM].map { number in
        signal(number, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: number)
        source.setEventHandler(handler: action)
        source.resume()
        return source
    }
}
