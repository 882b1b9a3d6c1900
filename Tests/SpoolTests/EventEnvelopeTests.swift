import Foundation
import Spool
import SpoolTesting
import Testing

private struct Shipped: SpoolEvent {
    static let eventType = "shipped"
    var parcel: String
    var weight: Double
}

private struct ShippedV2: SpoolEvent {
    static let eventType = "shipped"
    static let schemaVersion = 2
    var parcel: String
    var weight: Double
    var carrier: String?
}

private struct Returned: SpoolEvent {
    static let eventType = "returned"
    static let topic = "parcels"
    var parcel: String
}

/// The typed-event envelope: headers + JSON value, through a real in-process broker.
@Suite struct EventEnvelopeTests {
    @Test(.timeLimit(.minutes(1)))
    func anEventRoundTripsThroughTheBrokerWithItsMetadata() async throws {
        try await withBroker(.inproc) { broker in
            let client = try await broker.makeClient()
            defer { client.close() }
            let producer = try Producer(client: client)
            let first = EventEnvelope(Shipped(parcel: "p-1", weight: 2.5), correlationID: "saga-7", source: "warehouse")
            let second = EventEnvelope(Returned(parcel: "p-1"), correlationID: "saga-7", causationID: first.metadata.eventID, source: "desk")
            try await producer.send(first)
            let returned = try await producer.send(second)
            #expect(returned.topic == "parcels")
            try await producer.close()

            let shippedRecord = try await client.records(from: "shipped", startingAt: .earliest).first { _ in true }!
            #expect(shippedRecord.key == Array("saga-7".utf8))
            let decoded = try EventEnvelope<Shipped>(record: shippedRecord)
            #expect(decoded.payload.parcel == "p-1" && decoded.payload.weight == 2.5)
            #expect(decoded.metadata == first.metadata)
            #expect(decoded.metadata.source == "warehouse" && decoded.metadata.causationID == nil)

            let parcelRecord = try await client.records(from: "parcels", startingAt: .earliest).first { _ in true }!
            let decodedReturn = try EventEnvelope<Returned>(record: parcelRecord)
            #expect(decodedReturn.metadata.causationID == first.metadata.eventID)
            #expect(decodedReturn.metadata.correlationID == "saga-7")
        }
    }

    @Test func aReaderRefusesAnotherTypeANewerSchemaAndABadPayload() throws {
        let newer = try EventEnvelope(ShippedV2(parcel: "p", weight: 1, carrier: "x"), correlationID: "c", source: "s").record()
        let record = SpoolRecord(topic: "shipped", partition: 0, offset: 3, timestamp: 0, key: newer.key, value: newer.value, headers: newer.headers)
        #expect(throws: SpoolError.self) { try EventEnvelope<Shipped>(record: record) }
        let asV2 = try EventEnvelope<ShippedV2>(record: record)
        #expect(asV2.payload.carrier == "x")
        // A version-1 event is read by a version-2 reader (the new field is optional).
        let older = try EventEnvelope(Shipped(parcel: "q", weight: 3), correlationID: "c", source: "s").record()
        let olderRecord = SpoolRecord(topic: "shipped", partition: 0, offset: 4, timestamp: 0, key: older.key, value: older.value, headers: older.headers)
        #expect(try EventEnvelope<ShippedV2>(record: olderRecord).payload.carrier == nil)

        let wrongType = SpoolRecord(topic: "shipped", partition: 0, offset: 5, timestamp: 0, key: nil, value: older.value,
                                    headers: try EventEnvelope(Returned(parcel: "q"), correlationID: "c", source: "s").record().headers)
        let typeError = try #require(throws: SpoolError.self) { try EventEnvelope<Shipped>(record: wrongType) }
        #expect(typeError.message.contains("'returned', not a 'shipped'"))

        let garbage = SpoolRecord(topic: "shipped", partition: 0, offset: 6, timestamp: 0, key: nil, value: Array("{not json".utf8), headers: older.headers)
        let payloadError = try #require(throws: SpoolError.self) { try EventEnvelope<Shipped>(record: garbage) }
        #expect(payloadError.message.contains("does not decode"))

        let plain = SpoolRecord(topic: "shipped", partition: 0, offset: 7, timestamp: 0, key: nil, value: [1, 2], headers: [])
        let plainError = try #require(throws: SpoolError.self) { try EventEnvelope<Shipped>(record: plain) }
        #expect(plainError.message.contains("shipped/0@7 is not an event"))
    }

    @Test func metadataHeadersRoundTripAndBadHeadersAreNamed() throws {
        let metadata = EventMetadata(eventType: "t", correlationID: "c", causationID: "x", source: "svc", schemaVersion: 3, time: 1_763_805_600_123)
        #expect(try EventMetadata(headers: metadata.headers) == metadata)
        #expect(metadata.headers.first { $0.name == EventHeaderName.time }?.value == Array("2025-11-22T10:00:00.123Z".utf8))
        #expect(try EventMetadata(headers: [RecordHeader(name: "other", string: "x")]) == nil)

        var badTime = metadata.headers.filter { $0.name != EventHeaderName.time }
        badTime.append(RecordHeader(name: EventHeaderName.time, string: "yesterday"))
        let error = try #require(throws: SpoolError.self) { try EventMetadata(headers: badTime) }
        #expect(error.message.contains(EventHeaderName.time))
        #expect(EventMetadata.parseTime("2026-11-21T10:00:00Z") == 1_795_255_200_000)
        #expect(EventMetadata.parseTime("2026-11-21T11:00:00.5+01:00") == 1_795_255_200_500)
    }
}
