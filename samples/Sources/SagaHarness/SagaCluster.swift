import Foundation
import ServiceKit

/// The broker and the services of the saga sample as real processes in one working
/// directory, each with its log file there: the five services, and the supervisor when the
/// saga runs supervised.
public final class SagaCluster: Sendable {
    /// One of the processes.
    public enum Component: String, CaseIterable, Sendable {
        case broker, order, stock, balance, delivery, notification, supervisor
    }

    /// Where the executables are and how to start them.
    public struct Setup: Sendable {
        /// The spoold executable.
        public var spoold: String
        /// The directory of the service executables.
        public var serviceDirectory: String
        /// The working directory: databases, broker data, logs.
        public var directory: String
        /// Broker port; nil starts spoold and the services on their embedded defaults (7070, HTTP 8080).
        public var brokerPort: Int?
        /// The order service's HTTP port (when `brokerPort` is set).
        public var httpPort: Int
        /// Arguments added to spoold's.
        public var brokerArguments: [String]
        /// Arguments added to every service's.
        public var serviceArguments: [String]
        /// Arguments added to one service's.
        public var componentArguments: [Component: [String]]
        /// How the services run the saga (every service gets `--mode`).
        public var mode: SagaMode

        public init(spoold: String, serviceDirectory: String, directory: String, brokerPort: Int? = nil, httpPort: Int = 8080,
                    brokerArguments: [String] = [], serviceArguments: [String] = [], componentArguments: [Component: [String]] = [:],
                    mode: SagaMode = .choreography) {
            self.spoold = spoold
            self.serviceDirectory = serviceDirectory
            self.directory = directory
            self.brokerPort = brokerPort
            self.httpPort = httpPort
            self.brokerArguments = brokerArguments
            self.serviceArguments = serviceArguments
            self.componentArguments = componentArguments
            self.mode = mode
        }
    }

    public let setup: Setup
    /// The processes of this run, broker first: the supervisor only when the saga runs supervised.
    public let components: [Component]
    private let processes: [Component: ManagedProcess]

    public init(_ setup: Setup) {
        self.setup = setup
        components = Component.allCases.filter { $0 != .supervisor || setup.mode == .supervised }
        var processes: [Component: ManagedProcess] = [:]
        for component in components {
            let executable: String
            var arguments: [String]
            switch component {
            case .broker:
                executable = setup.spoold
                // On a chosen port (tests, several clusters at once) without the HTTP listener; on the defaults with it.
                arguments = setup.brokerPort.map { ["--listen", "tcp://127.0.0.1:\($0)", "--http-listen", "off"] } ?? []
                arguments += setup.brokerArguments
            default:
                executable = "\(setup.serviceDirectory)/\(component.rawValue)-service"
                arguments = setup.brokerPort.map { ["--broker", "tcp://127.0.0.1:\($0)"] } ?? []
                if component == .order, setup.brokerPort != nil { arguments += ["--http-port", "\(setup.httpPort)"] }
                arguments += ["--mode", setup.mode.rawValue] + setup.serviceArguments
            }
            arguments += setup.componentArguments[component] ?? []
            processes[component] = ManagedProcess(name: component.rawValue, executable: executable, arguments: arguments,
                                                  directory: setup.directory, logPath: "\(setup.directory)/\(component.rawValue).log")
        }
        self.processes = processes
    }

    /// The process of `component`.
    public func process(_ component: Component) -> ManagedProcess { processes[component]! }

    /// The order service's base URL.
    public var orderURL: URL { URL(string: "http://127.0.0.1:\(setup.brokerPort == nil ? 8080 : setup.httpPort)")! }

    /// The broker endpoint.
    public var brokerEndpoint: String { "tcp://127.0.0.1:\(setup.brokerPort ?? 7070)" }

    /// The SQLite file of a service.
    public func databasePath(_ component: Component) -> String { "\(setup.directory)/\(component.rawValue).sqlite" }

    /// The notification channel's file.
    public var channelPath: String { "\(setup.directory)/notification-channel.sqlite" }

    /// The rider dispatch's file.
    public var dispatchPath: String { "\(setup.directory)/delivery-dispatch.sqlite" }

    /// Starts the broker, then the services.
    public func startAll() throws {
        for component in components { try process(component).start() }
    }

    /// Stops the services (SIGTERM, gracefully), then the broker; returns the components that
    /// did not stop in time (they are killed).
    @discardableResult
    public func stopAll() async -> [Component] {
        var stuck: [Component] = []
        for component in components.reversed() where !(await process(component).stop()) {
            stuck.append(component)
            await process(component).crash()
        }
        return stuck
    }
}
