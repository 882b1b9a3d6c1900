import SpoolWire

/// Consumer-group and committed-offset calls. ``Consumer`` uses them; call them yourself for
/// tools (inspecting or resetting a group) or your own group protocol.
extension SpoolClient {
    /// Joins `group` to consume `topics` (with `memberID` and `owned` on a rejoin) and returns the
    /// member's id, generation and the partitions it may consume now.
    public func joinGroup(_ group: String, topics: [String], memberID: String = "", owned: [TopicPartition] = [],
                          sessionTimeout: Duration = .seconds(10)) async throws(SpoolError) -> GroupAssignment {
        let request = JoinGroupRequest(group: group, memberID: memberID, sessionTimeoutMilliseconds: UInt32(clamping: sessionTimeout.wholeMilliseconds),
                                       topics: topics, owned: owned)
        return try decode(JoinGroupResponse.self, try await call(.joinGroup, [request.encoded()])).assignment
    }

    /// Renews the member's session, reports the partitions it still holds, and returns its
    /// assignment now. Throws ``SpoolError/Code/unknownMember`` when it must join again.
    public func heartbeat(_ group: String, memberID: String, generation: Int32, owned: [TopicPartition]) async throws(SpoolError) -> GroupAssignment {
        let request = HeartbeatRequest(group: group, memberID: memberID, generation: generation, owned: owned)
        return try decode(HeartbeatResponse.self, try await call(.heartbeat, [request.encoded()])).assignment
    }

    /// Leaves the group at once; its partitions move to the other members.
    public func leaveGroup(_ group: String, memberID: String) async throws(SpoolError) {
        _ = try decode(LeaveGroupResponse.self, try await call(.leaveGroup, [LeaveGroupRequest(group: group, memberID: memberID).encoded()]))
    }

    /// Stores `offsets` for `group` and returns once they are on disk. A member passes its id and
    /// generation (a stale generation, or a partition it does not own, throws
    /// ``SpoolError/Code/staleGeneration``); with the defaults the commit is administrative and
    /// works only while the group has no members (``SpoolError/Code/groupNotEmpty``).
    public func commitOffsets(_ group: String, _ offsets: [CommittedOffset], memberID: String = "",
                              generation: Int32 = -1) async throws(SpoolError) {
        let request = CommitOffsetsRequest(group: group, memberID: memberID, generation: generation, offsets: offsets)
        _ = try decode(CommitOffsetsResponse.self, try await call(.commitOffsets, [request.encoded()]))
    }

    /// The offsets `group` committed: for `partitions` (offset -1 where none), or all of them.
    public func committedOffsets(_ group: String, partitions: [TopicPartition] = []) async throws(SpoolError) -> [CommittedOffset] {
        let request = FetchOffsetsRequest(group: group, partitions: partitions)
        return try decode(FetchOffsetsResponse.self, try await call(.fetchOffsets, [request.encoded()])).offsets
    }

    /// The groups the broker knows (with members or with committed offsets), sorted by name.
    public func groups() async throws(SpoolError) -> [GroupListing] {
        try decode(ListGroupsResponse.self, try await call(.listGroups, [ListGroupsRequest().encoded()])).groups.map(GroupListing.init)
    }

    /// One group: state, generation, members and their partitions, and per partition the
    /// committed offset, log end and lag.
    public func describeGroup(_ group: String) async throws(SpoolError) -> GroupDescription {
        GroupDescription(try decode(DescribeGroupResponse.self, try await call(.describeGroup, [DescribeGroupRequest(group: group).encoded()])))
    }
}
