import SpoolWire
import Testing

@Suite struct TopicNameTests {
    @Test(arguments: ["orders", "a.b-c_D9", String(repeating: "x", count: 249), "a", "...", ".hidden", "-", "_",
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"])
    func acceptsValidNames(name: String) throws {
        let topic = try TopicName(name)
        #expect(topic.rawValue == name)
        #expect(topic.description == name)
    }

    /// Each invalid name with a part of the message that names its problem.
    @Test(arguments: [
        ("", "empty"),
        (".", "'.' is not allowed"),
        ("..", "'..' is not allowed"),
        ("a/b", "contains '/'"),
        ("a b", "contains ' '"),
        ("é", "contains byte 0xc3"),
        (String(repeating: "x", count: 250), "250 characters; the limit is 249"),
        ("../etc", "contains '/'"),
        ("@spoold.lock", "contains '@'"),
        ("tab\there", "contains byte 0x9"),
        ("nul\0", "contains byte 0x0"),
        ("a\\b", "contains '\\'"),
        ("🚀", "contains byte 0xf0"),
        (String(repeating: "é", count: 125), "250 characters"),
    ])
    func rejectsInvalidNames(name: String, problem: String) {
        do {
            let topic = try TopicName(name)
            Issue.record("accepted \(topic)")
        } catch {
            #expect(error.code == .invalidTopicName)
            #expect(error.message.contains(problem), "\(error.message)")
        }
    }

    @Test func keepsLongInvalidNamesShortInTheMessage() {
        let name = String(repeating: "y", count: 100) + "/" + String(repeating: "z", count: 100)
        let error = wireError { () throws(WireError) in try TopicName(name) }
        #expect(error?.code == .invalidTopicName)
        #expect(error.map { $0.message.utf8.count < 200 } == true, "\(String(describing: error))")
    }

    @Test func ordersByName() throws {
        let names = try ["b", "a.c", "a", "A"].map { (name) throws(WireError) in try TopicName(name) }
        #expect(names.sorted().map(\.rawValue) == ["A", "a", "a.c", "b"])
        #expect(try TopicName("x") == TopicName("x"))
    }
}
