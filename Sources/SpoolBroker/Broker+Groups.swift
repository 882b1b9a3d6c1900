import Logging
import SpoolStorage
import SpoolWire

/// A commit written to the offset store, waiting for the sync that makes it durable.
struct PendingCommit {
    let client: ClientID
    let header: FrameHeader
    /// The store's sync position that covers the commit.
    let endOffset: Int64
}

extension Broker {
    // MARK: Producer ids

    func initProducerID() -> InitProducerIDResponse {
        InitProducerIDResponse(producerID: Int64.random(in: 0...Int64.max), producerEpoch: 0)
    }

    // MARK: Membership

    func joinGroup(_ request: JoinGroupRequest, now: Int64) throws(WireError) -> JoinGroupResponse {
        try checkGroupName(request.group)
        try GroupCoordinator.check(request)
        // Joining declares what the member consumes: a missing topic is auto-created (where that is on).
        for topic in request.topics { _ = try partition(try TopicName(topic), 0, creating: true) }
        let assignment = groups.join(request, now: now)
        logger.info("member joined a group", metadata: [
            "group": "\(request.group)", "member": "\(assignment.memberID)", "generation": "\(assignment.generation)",
            "partitions": "\(assignment.partitions.count)",
        ])
        return JoinGroupResponse(assignment: assignment)
    }

    func heartbeat(_ request: HeartbeatRequest, now: Int64) throws(WireError) -> HeartbeatResponse {
        HeartbeatResponse(assignment: try groups.heartbeat(request, now: now))
    }

    func leaveGroup(_ request: LeaveGroupRequest) -> LeaveGroupResponse {
        groups.leave(group: request.group, memberID: request.memberID)
        logger.info("member left a group", metadata: ["group": "\(request.group)", "member": "\(request.memberID)"])
        return LeaveGroupResponse()
    }

    /// Removes group members whose session ran out by `now` (their partitions move to the others).
    public func expireGroupSessions(now: Int64) {
        for (group, member) in groups.expireSessions(now: now) {
            logger.warning("removed a group member whose session timed out", metadata: ["group": "\(group)", "member": "\(member)"])
        }
    }

    // MARK: Offsets

    /// Stores the commit and answers once it is synced (nil reply now), or throws.
    func commitOffsets(client: ClientID, header: FrameHeader, _ request: CommitOffsetsRequest, now: Int64) throws(WireError) {
        try checkGroupName(request.group)
        for committed in request.offsets {
            _ = try partition(try TopicName(committed.partition.topic), committed.partition.partition, creating: false)
            guard committed.offset >= 0 else {
                throw WireError(.invalidRequest, "cannot commit offset \(committed.offset) for \(committed.partition); offsets start at 0")
            }
        }
        try groups.checkCommit(group: request.group, memberID: request.memberID, generation: request.generation,
                               partitions: request.offsets.map(\.partition))
        if offsetStoreFailure != nil { rewriteOffsetStore(now: now) }
        if let reason = offsetStoreFailure { throw WireError(.storageError, "committed offsets are offline: \(reason)") }
        try checkWaiting(client)
        let work: SyncWork
        do throws(StorageError) {
            work = try offsetStore.commit(group: request.group, offsets: request.offsets)
        } catch {
            if error.code == .invalidArgument { throw WireError(.invalidRequest, "commit for group '\(request.group)' failed: \(error.message)") }
            writeFaults.failed(.committedOffsets, .commit, error, affects: "commits are refused until a write works again",
                               now: now, metadata: offsetStoreMetadata, logger: logger)
            throw WireError(.storageError, "commit for group '\(request.group)' failed, nothing was stored: \(error.message)")
        }
        writeFaults.succeeded(.committedOffsets, .commit, now: now, metadata: offsetStoreMetadata, logger: logger)
        pendingCommits.append(PendingCommit(client: client, header: header, endOffset: work.endOffset))
        noteWaiting(client)
        unsyncedCommits = unsyncedCommits.map { $0.merged(with: work) } ?? work
        do throws(StorageError) {
            try offsetStore.compactIfNeeded()
        } catch {
            // The commit is written and waits for its sync; a compaction that failed is tried again after the next commit.
            logger.warning("could not compact the offset store; trying again after the next commit",
                           metadata: offsetStoreMetadata.merging(["error": "\(error.message)"]) { $1 })
        }
    }

    /// Acknowledges the commits a finished sync of the offset store covers, or fails them all.
    ///
    /// After a failed sync the store's pages may never reach the disk (and no later sync could
    /// prove otherwise), so the waiting commits get a storage error (their consumers commit again)
    /// and the whole store is rewritten into new files (snapshot, synced) under a new epoch;
    /// commits then work as before. If the rewrite fails too (a full disk), commits are refused
    /// and each one tries the rewrite again, so they resume by themselves once it works.
    func committedOffsetsSynced(_ result: Result<Int64, StorageError>, epoch: Int, now: Int64) -> [BrokerAction] {
        guard epoch == offsetStoreEpoch else { return [] }
        switch result {
        case .success(let end):
            writeFaults.succeeded(.committedOffsets, .sync, now: now, metadata: offsetStoreMetadata, logger: logger)
            let count = pendingCommits.prefix { $0.endOffset <= end }.count
            defer { pendingCommits.removeFirst(count) }
            return delivered(pendingCommits.prefix(count).map { reply($0.client, $0.header, CommitOffsetsResponse()) })
        case .failure(let error):
            offsetStoreEpoch += 1
            unsyncedCommits = nil
            writeFaults.failed(.committedOffsets, .sync, error, affects: "waiting commits get errors; the store is rewritten into new files",
                               now: now, metadata: offsetStoreMetadata, logger: logger)
            rewriteOffsetStore(now: now)
            defer { pendingCommits = [] }
            return delivered(pendingCommits.map {
                errorReply($0.client, $0.header, WireError(.storageError, "the commit could not be synced (commit again): \(error.message)"))
            })
        }
    }

    /// Rewrites the offset store into new, synced files (after a failed sync); clears
    /// ``offsetStoreFailure`` and the sync fault if that worked, else says why it did not (a
    /// rewrite that fails is the same sync fault going on, logged again only for another cause).
    private func rewriteOffsetStore(now: Int64) {
        do throws(StorageError) {
            try offsetStore.compact()
            offsetStoreFailure = nil
            writeFaults.succeeded(.committedOffsets, .sync, now: now, metadata: offsetStoreMetadata, logger: logger)
        } catch {
            offsetStoreFailure = "after a failed sync the store could not be rewritten (\(error.message)); each commit tries again"
            writeFaults.failed(.committedOffsets, .sync, error, affects: "commits are refused; each commit tries the rewrite again",
                               now: now, metadata: offsetStoreMetadata, logger: logger)
        }
    }

    /// The offset store's directory, for log lines about it.
    private var offsetStoreMetadata: Logger.Metadata { ["path": "\(offsetStore.directory)"] }

    func fetchOffsets(_ request: FetchOffsetsRequest) throws(WireError) -> FetchOffsetsResponse {
        try checkGroupName(request.group)
        guard !request.partitions.isEmpty else { return FetchOffsetsResponse(offsets: offsetStore.committed(group: request.group)) }
        return FetchOffsetsResponse(offsets: request.partitions.sorted().map {
            offsetStore.committed(group: request.group, partition: $0) ?? CommittedOffset(partition: $0, offset: -1)
        })
    }

    // MARK: Description

    func listGroups() -> ListGroupsResponse {
        var listed = Dictionary(uniqueKeysWithValues: groups.liveGroups.map { ($0.name, $0) })
        for name in offsetStore.groups where listed[name] == nil {
            listed[name] = ListGroupsResponse.Group(name: name, state: .empty, memberCount: 0)
        }
        return ListGroupsResponse(groups: listed.keys.sorted().map { listed[$0]! })
    }

    func describeGroup(_ request: DescribeGroupRequest) throws(WireError) -> DescribeGroupResponse {
        try checkGroupName(request.group)
        let described = groups.describe(request.group)
        let committed = offsetStore.committed(group: request.group)
        let partitions = Set(described.partitions).union(committed.map(\.partition)).sorted()
        let progress = partitions.map { partition -> DescribeGroupResponse.PartitionProgress in
            let offset = committed.first { $0.partition == partition }?.offset ?? -1
            guard let name = try? TopicName(partition.topic),
                  let state = partitionState(PartitionKey(topic: name, partition: partition.partition))
            else { return .init(partition: partition, committedOffset: offset, logEndOffset: -1, lag: 0) }
            let from = offset >= 0 ? offset : state.log.logStartOffset
            return .init(partition: partition, committedOffset: offset, logEndOffset: state.visibleEnd, lag: max(0, state.visibleEnd - from))
        }
        return DescribeGroupResponse(group: request.group, state: described.state, generation: described.generation,
                                     members: described.members, partitions: progress)
    }

    /// Group names follow the topic-name rules (1–249 of `[A-Za-z0-9._-]`, not `.` or `..`).
    private func checkGroupName(_ name: String) throws(WireError) {
        do {
            _ = try TopicName(name)
        } catch {
            throw WireError(.invalidRequest, "invalid group name (group names follow the topic-name rules): \(error.message)")
        }
    }
}
