import ArgumentParser
import Foundation
import Spool

/// `spool keys`: CURVE key files for brokers and clients.
struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make CURVE key pairs for the broker and its clients.",
        subcommands: [Generate.self]
    )

    /// `spool keys generate NAME`: writes NAME.key (secret, mode 0600) and NAME.pub.
    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a new CURVE key pair: NAME.key (secret, readable by you only) and NAME.pub (public).",
            discussion: """
                The files use ZeroMQ's certificate format. Give the broker its NAME.key \\
                (curve.server.key.file) and each client the broker's NAME.pub; admit a client by \\
                adding its public key under curve.clients in spoold.yaml.

                Examples:
                  spool keys generate broker
                  spool keys generate billing --dir /etc/spool/keys
                """
        )

        @Argument(help: "Name of the key pair; the files are NAME.key and NAME.pub.")
        var name: String

        @Option(help: "Directory to write into (created if missing).")
        var dir: String = "."

        @Flag(help: "Replace existing files.")
        var force = false

        func validate() throws {
            guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
                throw ValidationError("NAME must be a plain file name, not '\(name)'")
            }
        }

        func run() throws {
            let secretPath = "\(dir)/\(name).key", publicPath = "\(dir)/\(name).pub"
            let files = FileManager.default
            if !force, let existing = [secretPath, publicPath].first(where: files.fileExists(atPath:)) {
                fail("\(existing) exists; use --force to replace it")
            }
            do {
                try files.createDirectory(atPath: dir, withIntermediateDirectories: true)
                let keys = try CurveKeyPair.generate()
                guard files.createFile(atPath: secretPath, contents: Data(keys.secretFileText.utf8), attributes: [.posixPermissions: 0o600]) else {
                    fail("cannot write \(secretPath)")
                }
                try Data(keys.publicFileText.utf8).write(to: URL(fileURLWithPath: publicPath))
                print("wrote \(secretPath) (secret: keep it here) and \(publicPath) (public key \(keys.publicKey))")
            } catch {
                fail("cannot write the key files in \(dir): \(error)")
            }
        }
    }
}
