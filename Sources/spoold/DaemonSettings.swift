import Foundation
import Logging
import SpoolBroker
import SpoolConsole
import SpoolServer
import SpoolStorage
import SpoolWire
import Yams
import ZeroMQ

/// Every setting of `spoold`, with the embedded defaults; a YAML file and flags override them.
/// The keys are documented in `broker-config/spoold.yaml`.
struct DaemonSettings {
    var server = ServerConfiguration()
    var logLevel = Logger.Level.info
    /// The keys of ``LogSettings`` given so far; checked one by one as they come.
    var logSettings: [String: String] = [:]
    /// The server's CURVE key pair, from `curve.server.key.file`.
    var curveServerKeys: CurveKeyPair?
    /// Admitted CURVE clients, public key → name, from `curve.clients`.
    var curveClients: [String: String] = [:]
    /// The `acl:` rules, if given.
    var accessRules: AccessRules?
    /// The HTTP listener (metrics, health, admin API, console); nil with `http.listen: off`.
    var http: ConsoleConfiguration? = ConsoleConfiguration()
    /// False leaves metrics unrecorded (swift-metrics' no-op backend) and `/metrics` empty: for
    /// measuring what recording costs. Default: true.
    var metricsEnabled = true
    /// The client name the HTTP listener has towards the broker under CURVE (its `acl` rules apply).
    var httpPrincipal = "console"
    /// The directory relative key file paths start from: the configuration file's.
    var baseDirectory = "."

    /// The server configuration all keys add up to.
    var serverConfiguration: ServerConfiguration {
        var configuration = server
        // Every key was checked when it was set, and together they cannot conflict.
        configuration.broker.log = (try? LogSettings.apply(logSettings, to: LogConfiguration())) ?? LogConfiguration()
        configuration.curve = curveServerKeys.map { CurveSecurity(serverKeys: $0, clients: curveClients) }
        configuration.broker.accessRules = accessRules
        return configuration
    }

    /// Checks what single keys cannot: CURVE clients need a server key, and a server key needs clients.
    func checkCombinations() throws(ConfigurationError) {
        if curveServerKeys == nil, !curveClients.isEmpty {
            throw ConfigurationError("curve.clients is set but curve.server.key.file is not: CURVE needs the server's key pair")
        }
        if curveServerKeys != nil, curveClients.isEmpty {
            throw ConfigurationError("curve.server.key.file is set but curve.clients is empty: no client could connect")
        }
        if let http, http.token == nil, curveServerKeys != nil || !http.isLoopback {
            let why = curveServerKeys != nil ? "CURVE is on" : "http.listen (\(http.host)) is not a loopback address"
            throw ConfigurationError("\(why), so the HTTP listener needs a token: set http.token.file (a file holding one line), or http.listen: off")
        }
        if let accessRules {
            guard curveServerKeys != nil else {
                throw ConfigurationError("acl needs CURVE (curve.server.key.file and curve.clients): clients are known by their keys")
            }
            let admitted = Set(curveClients.values).union(http == nil ? [] : [httpPrincipal])
            for rule in accessRules.rules {
                for (operation, names) in rule.grants.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                    if let unknown = names.sorted().first(where: { $0 != "*" && !admitted.contains($0) }) {
                        throw ConfigurationError("acl.\(rule.pattern).\(operation.rawValue): '\(unknown)' is not a client in curve.clients")
                    }
                }
            }
        }
    }

    /// Applies the keys of a YAML file. Unknown keys and values of the wrong type or range
    /// stop with an error that names the key and its line and column.
    mutating func load(yamlFile path: String) throws(ConfigurationError) {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError("cannot read configuration file \(path): \(error.localizedDescription)")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw ConfigurationError("\(path): not valid YAML: \(error)")
        }
        baseDirectory = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        guard let root else { return }  // an empty file keeps the defaults
        guard let mapping = root.mapping else {
            throw ConfigurationError("\(path)\(position(root)): the top level must be a mapping of key: value")
        }
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else {
                throw ConfigurationError("\(path)\(position(keyNode)): keys must be strings")
            }
            if key == "topics" {
                try declareTopics(value, at: keyNode, path: path)
                continue
            }
            if key == "curve.clients" {
                try admitClients(value, at: keyNode, path: path)
                continue
            }
            if key == "acl" {
                try readAccessRules(value, at: keyNode, path: path)
                continue
            }
            do throws(ConfigurationError) {
                try apply(key: key, value: ConfigurationValue(node: value))
            } catch {
                throw ConfigurationError("\(path)\(position(keyNode)): \(key): \(error.message)")
            }
        }
    }

    /// Sets one key from a file or a flag.
    mutating func apply(key: String, value: ConfigurationValue) throws(ConfigurationError) {
        switch key {
        case "listen": server.endpoint = try value.string()
        case "data.dir": server.broker.dataDirectory = try value.string()
        case "log.level":
            let text = try value.string()
            guard let level = Logger.Level(rawValue: text) else {
                throw ConfigurationError("'\(text)' is not one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            logLevel = level
        case "auto.create.topics": server.broker.autoCreateTopics = try value.bool()
        case "default.partitions": server.broker.defaultPartitions = Int32(try value.integer(in: 1...10_000))
        case _ where LogSettings.keys.contains(key):
            logSettings[key] = try Self.checkedLogSetting(key, value)
        case "retention.check.interval.ms": server.broker.retentionCheckIntervalMilliseconds = try value.integer(in: 1...86_400_000)
        case "group.rejoin.grace.ms": server.broker.groupRejoinGraceMilliseconds = try value.integer(in: 0...300_000)
        case "max.batch.bytes": server.broker.maxBatchBytes = try value.integer(in: 128...(1 << 30))
        case "max.record.bytes": server.broker.maxRecordBytes = try value.integer(in: 1...(1 << 30))
        case "max.fetch.bytes": server.broker.maxFetchBytes = try value.integer(in: 1024...(1 << 30))
        case "max.waiting.requests.per.client": server.broker.maxWaitingRequestsPerClient = try value.integer(in: 1...10_000_000)
        case "max.records.per.batch": server.broker.maxRecordsPerBatch = try value.integer(in: 1...10_000_000)
        case "max.topics": server.broker.maxTopics = try value.integer(in: 1...1_000_000)
        case "max.open.files":
            server.broker.maxOpenFiles = try value.string() == "auto" ? nil : try value.integer(in: 16...100_000_000)
        case "max.parked.fetches.per.client": server.broker.maxParkedFetchesPerClient = try value.integer(in: 1...1_000_000)
        case "max.fetch.wait.ms": server.broker.maxFetchWaitMilliseconds = try value.integer(in: 0...3_600_000)
        case "max.frame.bytes": server.maxFrameBytes = Int64(try value.integer(in: 1024...(1 << 40)))
        case "high.water.mark": server.highWaterMark = Int32(try value.integer(in: 1...10_000_000))
        case "allow.plaintext.network": server.allowPlaintextNetwork = try value.bool()
        case "http.listen":
            let text = try value.string()
            guard text != "off" else {
                http = nil
                return
            }
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port) else {
                throw ConfigurationError("'\(text)' is not host:port (e.g. 127.0.0.1:7071, 0.0.0.0:7071, [::1]:7071) or off")
            }
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { throw ConfigurationError("'\(text)' has no host (e.g. 127.0.0.1:7071)") }
            var listener = http ?? ConsoleConfiguration()
            listener.host = host
            listener.port = port
            http = listener
        case "http.admin": http?.admin = try value.bool()
        case "metrics.enabled": metricsEnabled = try value.bool()
        case "http.principal": httpPrincipal = try value.string()
        case "http.token.file":
            let file = resolved(try value.string())
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw ConfigurationError("cannot read the token file \(file)")
            }
            let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty, !token.contains("\n") else { throw ConfigurationError("the token file \(file) must hold one non-empty line") }
            http?.token = token
        case "curve.server.key.file":
            let file = resolved(try value.string())
            do throws(KeyFileError) {
                curveServerKeys = try CurveKeyPair(keyFile: file)
            } catch {
                throw ConfigurationError(error.message)
            }
        default:
            throw ConfigurationError("unknown key (see broker-config/spoold.yaml for every key)")
        }
    }

    /// The text of a ``LogSettings`` key after checking it alone; the error says what is wrong
    /// with the value (the caller names the key and its position).
    private static func checkedLogSetting(_ key: String, _ value: ConfigurationValue) throws(ConfigurationError) -> String {
        let text = try value.string()
        do throws(StorageError) {
            try LogSettings.check(text, for: key)
        } catch {
            throw ConfigurationError(error.message)
        }
        return text
    }

    /// Reads the `topics:` mapping (`topicsKey` is its key): `name: {partitions: N, <log setting>:
    /// value, …}`. An error names the file position of the offending name or key.
    private mutating func declareTopics(_ node: Node, at topicsKey: Node, path: String) throws(ConfigurationError) {
        guard let topics = node.mapping else {
            throw ConfigurationError("\(path)\(position(topicsKey)): topics: expected a mapping of topic name to its settings")
        }
        for (nameNode, settingsNode) in topics {
            let name: TopicName
            do throws(WireError) {
                name = try TopicName(nameNode.string ?? "")
            } catch {
                throw ConfigurationError("\(path)\(position(nameNode)): \(error.message)")
            }
            guard let entries = settingsNode.mapping else {
                throw ConfigurationError("\(path)\(position(settingsNode)): \(name): expected a mapping such as {partitions: 6}")
            }
            var metadata = TopicMetadata(partitions: 1)
            for (keyNode, valueNode) in entries {
                let key = keyNode.string ?? ""
                let value = ConfigurationValue(node: valueNode)
                do throws(ConfigurationError) {
                    if key == "partitions" {
                        metadata.partitions = Int32(try value.integer(in: 1...Int(DataDirectory.maxPartitions)))
                    } else if LogSettings.keys.contains(key) {
                        metadata.settings[key] = try Self.checkedLogSetting(key, value)
                    } else {
                        throw ConfigurationError("unknown topic setting; known: partitions, \(LogSettings.keys.joined(separator: ", "))")
                    }
                } catch {
                    throw ConfigurationError("\(path)\(position(keyNode)): topics.\(name).\(key): \(error.message)")
                }
            }
            server.broker.declaredTopics[name] = metadata
        }
    }

    /// Reads the `curve.clients:` mapping: `name: <public key, or the path of a .pub file>`.
    private mutating func admitClients(_ node: Node, at clientsKey: Node, path: String) throws(ConfigurationError) {
        guard let clients = node.mapping else {
            throw ConfigurationError("\(path)\(position(clientsKey)): curve.clients: expected a mapping of client name to public key or .pub file")
        }
        for (nameNode, keyNode) in clients {
            guard let name = nameNode.string, !name.isEmpty, let text = keyNode.string, !text.isEmpty else {
                throw ConfigurationError("\(path)\(position(nameNode)): curve.clients: expected name: public key (or .pub file)")
            }
            let key: String
            do throws(KeyFileError) {
                let file = resolved(text)
                key = try CurveKeyPair.publicKey(fileOrKey: FileManager.default.fileExists(atPath: file) ? file : text)
            } catch {
                throw ConfigurationError("\(path)\(position(keyNode)): curve.clients.\(name): \(error.message)")
            }
            if let other = curveClients[key] {
                throw ConfigurationError("\(path)\(position(keyNode)): curve.clients.\(name): this key is already admitted as \(other)")
            }
            curveClients[key] = name
        }
    }

    /// Reads the `acl:` mapping: `pattern: {produce: [names], consume: [names], admin: [names]}`.
    private mutating func readAccessRules(_ node: Node, at aclKey: Node, path: String) throws(ConfigurationError) {
        guard let patterns = node.mapping else {
            throw ConfigurationError("\(path)\(position(aclKey)): acl: expected a mapping of topic (or prefix*, or *) to {produce: [...], consume: [...], admin: [...]}")
        }
        var rules: [AccessRules.Rule] = []
        for (patternNode, grantsNode) in patterns {
            let pattern = patternNode.string ?? ""
            let prefix = pattern.hasSuffix("*") ? String(pattern.dropLast()) : pattern
            guard pattern == "*" || (try? TopicName(prefix)) != nil else {
                throw ConfigurationError("\(path)\(position(patternNode)): acl: '\(pattern)' is not a topic name, a prefix ending in *, or *")
            }
            guard let grants = grantsNode.mapping else {
                throw ConfigurationError("\(path)\(position(grantsNode)): acl.\(pattern): expected a mapping such as {produce: [billing]}")
            }
            var rule = AccessRules.Rule(pattern: pattern, grants: [:])
            for (operationNode, namesNode) in grants {
                guard let operation = operationNode.string.flatMap(AccessOperation.init(rawValue:)) else {
                    throw ConfigurationError("\(path)\(position(operationNode)): acl.\(pattern): '\(operationNode.string ?? "")' is not one of produce, consume, admin")
                }
                guard let names = namesNode.sequence?.compactMap(\.string), names.count == namesNode.sequence?.count else {
                    throw ConfigurationError("\(path)\(position(namesNode)): acl.\(pattern).\(operation.rawValue): expected a list of client names, such as [billing, stock]")
                }
                rule.grants[operation] = Set(names)
            }
            rules.append(rule)
        }
        accessRules = AccessRules(rules: rules)
    }

    /// `path` as given if absolute, else relative to the configuration file's directory.
    private func resolved(_ path: String) -> String {
        path.hasPrefix("/") ? path : "\(baseDirectory)/\(path)"
    }

    private func position(_ node: Node) -> String {
        node.mark.map { ":\($0.line):\($0.column)" } ?? ""
    }
}

/// A configuration value from YAML or a flag, converted on demand with a clear complaint.
struct ConfigurationValue {
    private let text: String
    private let isScalar: Bool

    init(node: Node) {
        text = node.scalar?.string ?? ""
        isScalar = node.scalar != nil
    }

    init(_ text: String) {
        self.text = text
        isScalar = true
    }

    func string() throws(ConfigurationError) -> String {
        guard isScalar, !text.isEmpty else { throw ConfigurationError("expected a non-empty string") }
        return text
    }

    func bool() throws(ConfigurationError) -> Bool {
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw ConfigurationError("expected true or false, got '\(text)'")
        }
    }

    func integer(in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard isScalar, let value = Int(text.replacingOccurrences(of: "_", with: "")) else {
            throw ConfigurationError("expected an integer, got '\(text)'")
        }
        guard range.contains(value) else { throw ConfigurationError("\(value) is outside \(range.lowerBound)...\(range.upperBound)") }
        return value
    }
}

/// A configuration problem, said in one line.
struct ConfigurationError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}
