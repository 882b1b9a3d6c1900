import Foundation
import Testing
import ZeroMQ

@Suite struct CurveTests {
    @Test func keyPairsAreValidAndThePublicKeyFollowsFromTheSecret() throws {
        let pair = try CurveKeyPair.generate()
        #expect(pair.publicKey.utf8.count == 40 && pair.secretKey.utf8.count == 40)
        #expect(pair != (try CurveKeyPair.generate()))
        #expect(try CurveKeyPair(secretKey: pair.secretKey) == pair)
        #expect(CurveKeyPair.isValidKey(pair.publicKey))
        for bad in ["", "short", String(repeating: "~", count: 40), pair.publicKey + "x"] {
            #expect(!CurveKeyPair.isValidKey(bad))
            #expect(throws: ZeroMQError.self) { try CurveKeyPair(secretKey: bad) }
        }
    }

    @Test func keyFilesRoundTripAndThePublicFileHoldsNoSecret() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("curve")).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pair = try CurveKeyPair.generate()
        try pair.secretFileText.write(toFile: "\(directory)/a.key", atomically: true, encoding: .utf8)
        try pair.publicFileText.write(toFile: "\(directory)/a.pub", atomically: true, encoding: .utf8)
        #expect(try CurveKeyPair(keyFile: "\(directory)/a.key") == pair)
        #expect(try CurveKeyPair.publicKey(fileOrKey: "\(directory)/a.pub") == pair.publicKey)
        #expect(try CurveKeyPair.publicKey(fileOrKey: pair.publicKey) == pair.publicKey)
        // A path of exactly 40 characters is also valid Z85: the file must win.
        let fortyCharacterPath = "/tmp/" + String(repeating: "k", count: 31) + ".pub"
        try #require(fortyCharacterPath.utf8.count == 40 && CurveKeyPair.isValidKey(fortyCharacterPath))
        try pair.publicFileText.write(toFile: fortyCharacterPath, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: fortyCharacterPath) }
        #expect(try CurveKeyPair.publicKey(fileOrKey: fortyCharacterPath) == pair.publicKey)
        #expect(!pair.publicFileText.contains(pair.secretKey))
        #expect(throws: KeyFileError.self) { try CurveKeyPair(keyFile: "\(directory)/a.pub") }
        #expect(throws: KeyFileError.self) { try CurveKeyPair(keyFile: "\(directory)/missing.key") }
        let other = try CurveKeyPair.generate()
        try pair.secretFileText.replacingOccurrences(of: pair.publicKey, with: other.publicKey)
            .write(toFile: "\(directory)/mixed.key", atomically: true, encoding: .utf8)
        #expect(throws: KeyFileError.self) { try CurveKeyPair(keyFile: "\(directory)/mixed.key") }
    }

    /// A CURVE server with a ZAP handler admits the client whose key it knows (its messages then
    /// carry the user id the handler gave) and refuses another (the client's monitor says so).
    @Test(.timeLimit(.minutes(1)))
    func aZAPHandlerAdmitsKnownKeysOnly() throws {
        let context = try Context()
        let zap = try Socket(context: context, type: .rep)
        try zap.bind(ZAPRequest.endpoint)
        let serverKeys = try CurveKeyPair.generate()
        let router = try Socket(context: context, type: .router)
        try router.setCurveServer(serverKeys, zapDomain: "test")
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = try router.lastEndpoint
        let known = try CurveKeyPair.generate(), stranger = try CurveKeyPair.generate()

        func client(_ keys: CurveKeyPair) throws -> (Socket, MonitorSocket) {
            let dealer = try Socket(context: context, type: .dealer)
            try dealer.setCurveClient(serverKey: serverKeys.publicKey, keys: keys)
            let monitor = try dealer.monitor(events: [.handshakeSucceeded, .handshakeFailedAuth])
            try dealer.connect(endpoint)
            return (dealer, monitor)
        }
        /// Answers one ZAP request: admits `known` as user "alice".
        func answerZAP() throws -> ZAPRequest {
            let frames = try #require(try zap.receive(within: 10_000), "no ZAP request")
            let request = try #require(ZAPRequest(frames: frames))
            let admit = request.curvePublicKey == known.publicKey
            _ = try zap.send(request.reply(admit: admit, statusText: admit ? "OK" : "unknown key", userID: "alice"))
            return request
        }

        let (good, goodMonitor) = try client(known)
        let request = try answerZAP()
        #expect(request.mechanism == "CURVE" && request.domain == "test")
        _ = try good.send([Frame(Array("hello".utf8))])
        let received = try #require(try router.receive(within: 10_000))
        #expect(received.last?.bytes == Array("hello".utf8))
        #expect(received.last?.property("User-Id") == "alice")
        #expect(try goodMonitor.collectEvents(within: 5_000) { $0.contains(.handshakeSucceeded) }.map(\.kind).contains(.handshakeSucceeded))

        let (bad, badMonitor) = try client(stranger)
        _ = try answerZAP()
        let events = try badMonitor.collectEvents(within: 5_000) { $0.contains(.handshakeFailedAuth) }
        #expect(events.map(\.kind).contains(.handshakeFailedAuth))
        _ = try bad.send([Frame(Array("let me in".utf8))], dontWait: true)
        #expect(try router.receive(within: 300) == nil, "a refused client's message arrived")
        try good.stopMonitor()
        try bad.stopMonitor()
    }
}
