import CZeroMQ
import Foundation

/// A CURVE key pair as 40-character Z85 strings (32-byte Curve25519 keys).
///
/// Key files use the ZeroMQ certificate format (czmq's `zcert`), so other ZeroMQ tools read
/// them: a secret file holds `public-key = "…"` and `secret-key = "…"` under a `curve` section,
/// a public file only the public key.
public struct CurveKeyPair: Sendable, Hashable {
    /// The public key, Z85: give it to the peers that must recognise this side.
    public let publicKey: String
    /// The secret key, Z85: never leaves this side.
    public let secretKey: String

    /// A fresh random key pair from libsodium (through `zmq_curve_keypair`).
    public static func generate() throws(ZeroMQError) -> CurveKeyPair {
        var publicKey = [CChar](repeating: 0, count: 41)
        var secretKey = [CChar](repeating: 0, count: 41)
        try Call.zmq("zmq_curve_keypair") { zmq_curve_keypair(&publicKey, &secretKey) }
        return CurveKeyPair(checkedPublicKey: text(publicKey), secretKey: text(secretKey))
    }

    /// The pair whose secret key is `secretKey`; the public key is derived from it. Throws
    /// `EINVAL` unless `secretKey` is a valid 40-character Z85 key.
    public init(secretKey: String) throws(ZeroMQError) {
        guard CurveKeyPair.isValidKey(secretKey) else {
            throw ZeroMQError(errno: EINVAL, operation: "CurveKeyPair(secretKey:) needs 40 Z85 characters")
        }
        var publicKey = [CChar](repeating: 0, count: 41)
        try Call.zmq("zmq_curve_public") { zmq_curve_public(&publicKey, secretKey) }
        self.init(checkedPublicKey: Self.text(publicKey), secretKey: secretKey)
    }

    private init(checkedPublicKey: String, secretKey: String) {
        publicKey = checkedPublicKey
        self.secretKey = secretKey
    }

    /// True if `key` is 40 characters of the Z85 alphabet that decode to 32 bytes.
    public static func isValidKey(_ key: String) -> Bool {
        guard key.utf8.count == 40 else { return false }
        var decoded = [UInt8](repeating: 0, count: 32)
        return zmq_z85_decode(&decoded, key) != nil
    }

    /// The Z85 form of a 32-byte binary key (as a ZAP request carries it).
    public static func z85(_ binaryKey: [UInt8]) -> String? {
        guard binaryKey.count == 32 else { return nil }
        var text = [CChar](repeating: 0, count: 41)
        guard zmq_z85_encode(&text, binaryKey, 32) != nil else { return nil }
        return CurveKeyPair.text(text)
    }

    /// The text before the terminating NUL of a C buffer libzmq filled (Z85 is ASCII).
    private static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: Key files

    /// The secret key file's text (both keys).
    public var secretFileText: String {
        """
        #   ZeroMQ CURVE **Secret** Certificate, written by Spool
        #   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.

        metadata
        curve
            public-key = "\(publicKey)"
            secret-key = "\(secretKey)"

        """
    }

    /// The public key file's text.
    public var publicFileText: String {
        """
        #   ZeroMQ CURVE Public Certificate, written by Spool
        #   Exchange securely, or use a secure mechanism to verify the contents
        #   of this file after exchange. Store public certificates in your home
        #   directory, in the .curve subdirectory.

        metadata
        curve
            public-key = "\(publicKey)"

        """
    }

    /// The pair in a secret key file (see ``secretFileText``). Throws a message naming the file
    /// and what is missing or malformed.
    public init(keyFile path: String) throws(KeyFileError) {
        let fields = try Self.fields(inFile: path)
        guard let secret = fields["secret-key"] else {
            throw KeyFileError("\(path) has no secret-key (is it a public key file? the secret file is the one without .pub)")
        }
        do {
            try self.init(secretKey: secret)
        } catch {
            throw KeyFileError("\(path): the secret-key is not a 40-character Z85 CURVE key")
        }
        if let stated = fields["public-key"], stated != publicKey {
            throw KeyFileError("\(path): the public-key does not belong to the secret-key")
        }
    }

    /// The public key in the key file (public or secret) at path `text`, or `text` itself when no
    /// such file exists and it is a key (a 40-character path can also be valid Z85, so the file wins).
    public static func publicKey(fileOrKey text: String) throws(KeyFileError) -> String {
        if !FileManager.default.fileExists(atPath: text), isValidKey(text) { return text }
        guard let key = try fields(inFile: text)["public-key"] else { throw KeyFileError("\(text) has no public-key") }
        guard isValidKey(key) else { throw KeyFileError("\(text): the public-key is not a 40-character Z85 CURVE key") }
        return key
    }

    /// The `name = "value"` lines of a certificate file.
    private static func fields(inFile path: String) throws(KeyFileError) -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw KeyFileError("cannot read key file \(path)")
        }
        var fields: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, parts[1].count >= 2, parts[1].hasPrefix("\""), parts[1].hasSuffix("\"") else { continue }
            fields[parts[0]] = String(parts[1].dropFirst().dropLast())
        }
        return fields
    }
}

/// A key file that cannot be read or does not hold a valid key; `message` names the file.
public struct KeyFileError: Error, Sendable, CustomStringConvertible {
    /// What is wrong, naming the file.
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { message }
}
