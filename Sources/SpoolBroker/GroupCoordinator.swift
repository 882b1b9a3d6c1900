import SpoolWire

/// Consumer groups: members, their sessions, and which member consumes which partition.
///
/// Assignment is round-robin, computed by the broker: the group's partitions (every partition of
/// every topic a member consumes), sorted by topic and number, are dealt in turn to the members
/// sorted by id, each partition to the next member that consumes its topic. It is recomputed
/// whenever the membership or the topics' partitions change, and each change bumps the group's
/// generation.
///
/// Handoff without overlap: a member is granted a partition of its target only once no other
/// member still owns it. A member owns what it was granted until a heartbeat's `owned` list no
/// longer names it (the member stopped consuming it and committed), or until it leaves or its
/// session times out. So two members never consume one partition at once, and a member that lost
/// a partition cannot commit its offset (fencing, checked by ``checkCommit(group:memberID:generation:partitions:)``).
///
/// Membership lives in memory: after a broker restart the members' heartbeats get
/// ``ErrorCode/unknownMember`` and they join again with their ids and owned partitions. Groups
/// that existed before the restart get a grace period (``BrokerConfiguration/groupRejoinGraceMilliseconds``,
/// counted from the first group request): a member keeps the partitions it says it holds and
/// nothing else is granted, so a newcomer cannot take a partition from a member that has not
/// rejoined yet.
/// Not thread-safe: owned by the broker's thread.
final class GroupCoordinator {
    /// Shortest and longest session timeout a member may ask for, in milliseconds.
    static let sessionTimeoutRange: ClosedRange<UInt32> = 100...300_000

    private struct Member {
        var topics: Set<String>
        var sessionTimeout: Int64
        var deadline: Int64
        var owned: Set<TopicPartition>
    }

    private struct Group {
        var generation: Int32 = 0
        var members: [String: Member] = [:]
        /// Member id → the partitions round-robin gives it.
        var target: [String: Set<TopicPartition>] = [:]
        /// Every partition of the members' topics when `target` was computed.
        var universe: [TopicPartition] = []
    }

    private var groups: [String: Group] = [:]
    /// Answers the partition count of a topic, nil when it does not exist.
    private let partitionCount: (String) -> Int32?
    /// Groups that existed before the broker started and are still in their rejoin grace.
    private var recovering: Set<String>
    private let rejoinGrace: Int64
    /// When the grace ends; set by the first request.
    private var graceEnd: Int64?

    /// A coordinator that reads topics' partition counts through `partitionCount`; the groups
    /// named in `recovering` get `rejoinGrace` milliseconds for their members to rejoin.
    init(recovering: Set<String>, rejoinGrace: Int64, partitionCount: @escaping (String) -> Int32?) {
        self.recovering = rejoinGrace > 0 ? recovering : []
        self.rejoinGrace = rejoinGrace
        self.partitionCount = partitionCount
    }

    /// Starts the grace clock at the first request and ends it when due.
    private func advanceGrace(now: Int64) {
        guard !recovering.isEmpty else { return }
        let end = graceEnd ?? (now + rejoinGrace)
        graceEnd = end
        if now >= end { recovering = [] }
    }

    // MARK: Requests

    /// Adds a member (a new id when `request.memberID` is empty; the same id on a rejoin) and
    /// returns its assignment. The request must have passed ``check(_:)`` (the broker checks it
    /// before it creates the request's topics).
    func join(_ request: JoinGroupRequest, now: Int64) -> GroupAssignment {
        advanceGrace(now: now)
        let memberID = request.memberID.isEmpty ? Self.newMemberID() : request.memberID
        var group = groups[request.group] ?? Group()
        let timeout = Int64(request.sessionTimeoutMilliseconds)
        let member = Member(topics: Set(request.topics), sessionTimeout: timeout, deadline: now + timeout, owned: Set(request.owned))
        let changed = group.members[memberID].map { $0.topics != member.topics } ?? true
        group.members[memberID] = member
        if changed { rebalance(&group) }
        let assignment = grant(&group, memberID, inGrace: recovering.contains(request.group))
        groups[request.group] = group
        return assignment
    }

    /// Throws ``ErrorCode/invalidRequest`` for a session timeout outside ``sessionTimeoutRange``
    /// or an empty topic list.
    static func check(_ request: JoinGroupRequest) throws(WireError) {
        guard sessionTimeoutRange.contains(request.sessionTimeoutMilliseconds) else {
            throw WireError(.invalidRequest, "session timeout \(request.sessionTimeoutMilliseconds) ms is outside \(sessionTimeoutRange.lowerBound)...\(sessionTimeoutRange.upperBound) ms")
        }
        guard !request.topics.isEmpty else { throw WireError(.invalidRequest, "a group member must consume at least one topic") }
    }

    /// Renews a member's session, takes its `owned` list, and returns its assignment now.
    /// Throws ``ErrorCode/unknownMember`` if the group does not know it.
    func heartbeat(_ request: HeartbeatRequest, now: Int64) throws(WireError) -> GroupAssignment {
        advanceGrace(now: now)
        guard var group = groups[request.group], var member = group.members[request.memberID] else {
            throw unknownMember(request.memberID, request.group)
        }
        member.deadline = now + member.sessionTimeout
        member.owned = Set(request.owned)
        group.members[request.memberID] = member
        if currentUniverse(of: group) != group.universe { rebalance(&group) }
        let assignment = grant(&group, request.memberID, inGrace: recovering.contains(request.group))
        groups[request.group] = group
        return assignment
    }

    /// The first group (by name) with a live member that consumes `topic`, if any.
    func groupConsuming(_ topic: String) -> String? {
        groups.filter { $0.value.members.values.contains { $0.topics.contains(topic) } }.keys.min()
    }

    /// Removes a member at once; its partitions go to the others. Unknown members are ignored.
    func leave(group name: String, memberID: String) {
        guard var group = groups[name], group.members.removeValue(forKey: memberID) != nil else { return }
        rebalance(&group)
        groups[name] = group.members.isEmpty ? nil : group
    }

    /// Throws unless `memberID` may commit offsets of `partitions` in `generation`: it must be a
    /// member, in the current generation, owning each partition (``ErrorCode/staleGeneration``
    /// otherwise). An administrative commit (empty id, generation -1) is allowed only while the
    /// group has no members (``ErrorCode/groupNotEmpty``).
    func checkCommit(group name: String, memberID: String, generation: Int32, partitions: [TopicPartition]) throws(WireError) {
        let group = groups[name]
        if memberID.isEmpty && generation == -1 {
            guard let group, !group.members.isEmpty else { return }
            throw WireError(.groupNotEmpty, "group '\(name)' has \(group.members.count) live member(s); stop them before changing its offsets")
        }
        guard let group, let member = group.members[memberID] else { throw unknownMember(memberID, name) }
        guard generation == group.generation else {
            throw WireError(.staleGeneration, "commit for group '\(name)' from generation \(generation); the group is at generation \(group.generation)")
        }
        if let foreign = partitions.first(where: { !member.owned.contains($0) }) {
            throw WireError(.staleGeneration, "member \(memberID) of group '\(name)' does not own \(foreign)")
        }
    }

    // MARK: Time

    /// Removes members whose session ran out by `now`; returns (group, member) of each removed.
    func expireSessions(now: Int64) -> [(group: String, memberID: String)] {
        if let graceEnd, now >= graceEnd { recovering = [] }
        var expired: [(group: String, memberID: String)] = []
        for (name, var group) in groups {
            let gone = group.members.filter { $0.value.deadline <= now }.map(\.key)
            guard !gone.isEmpty else { continue }
            for id in gone.sorted() {
                group.members.removeValue(forKey: id)
                expired.append((name, id))
            }
            rebalance(&group)
            groups[name] = group.members.isEmpty ? nil : group
        }
        return expired
    }

    /// The earliest session deadline, nil without members.
    var nextDeadline: Int64? {
        groups.values.lazy.flatMap { $0.members.values.map(\.deadline) }.min()
    }

    // MARK: Description

    /// The groups with members, sorted by name, with their state and member count.
    var liveGroups: [ListGroupsResponse.Group] {
        groups.keys.sorted().map { name in
            let group = groups[name]!
            return ListGroupsResponse.Group(name: name, state: state(of: group), memberCount: UInt32(group.members.count))
        }
    }

    /// A group's state, generation, members with the partitions they consume now, and the
    /// partitions of its topics; an unknown group is empty.
    func describe(_ name: String) -> (state: GroupState, generation: Int32, members: [DescribeGroupResponse.Member], partitions: [TopicPartition]) {
        guard let group = groups[name] else { return (.empty, 0, [], []) }
        let members = group.members.keys.sorted().map { id in
            DescribeGroupResponse.Member(memberID: id, partitions: group.members[id]!.owned.sorted())
        }
        return (state(of: group), group.generation, members, group.universe)
    }

    // MARK: Assignment

    private func state(of group: Group) -> GroupState {
        if group.members.isEmpty { return .empty }
        let waiting = group.members.keys.contains { granted(group, $0).count < (group.target[$0]?.count ?? 0) }
        return waiting ? .rebalancing : .stable
    }

    /// Every partition of the topics the members consume, sorted.
    private func currentUniverse(of group: Group) -> [TopicPartition] {
        let topics = Set(group.members.values.flatMap(\.topics)).sorted()
        return topics.flatMap { topic in (0..<(partitionCount(topic) ?? 0)).map { TopicPartition(topic: topic, partition: $0) } }
    }

    /// Recomputes the target assignment round-robin and bumps the generation.
    private func rebalance(_ group: inout Group) {
        group.generation &+= 1
        group.universe = currentUniverse(of: group)
        let ids = group.members.keys.sorted()
        var target: [String: Set<TopicPartition>] = [:]
        var turn = 0
        for partition in group.universe {
            for step in 0..<ids.count {
                let id = ids[(turn + step) % ids.count]
                guard group.members[id]!.topics.contains(partition.topic) else { continue }
                target[id, default: []].insert(partition)
                turn = (turn + step + 1) % ids.count
                break
            }
        }
        group.target = target
    }

    /// What the member holds of the group's partitions, minus what another member holds.
    private func heldInGrace(_ group: Group, _ memberID: String) -> [TopicPartition] {
        group.members[memberID]!.owned.intersection(group.universe).subtracting(ownedByOthers(group, memberID)).sorted()
    }

    private func ownedByOthers(_ group: Group, _ memberID: String) -> Set<TopicPartition> {
        group.members.filter { $0.key != memberID }.values.reduce(into: Set<TopicPartition>()) { $0.formUnion($1.owned) }
    }

    /// The member's target partitions that no other member owns, sorted.
    private func granted(_ group: Group, _ memberID: String) -> [TopicPartition] {
        (group.target[memberID] ?? []).subtracting(ownedByOthers(group, memberID)).sorted()
    }

    /// The member's assignment now; what it is granted counts as owned from here on (until its
    /// next heartbeat says otherwise), so no other member can be granted it meanwhile. In the
    /// rejoin grace, only what the member already holds.
    private func grant(_ group: inout Group, _ memberID: String, inGrace: Bool) -> GroupAssignment {
        let partitions = inGrace ? heldInGrace(group, memberID) : granted(group, memberID)
        group.members[memberID]!.owned.formUnion(partitions)
        let interval = UInt32(group.members[memberID]!.sessionTimeout / 3)
        return GroupAssignment(memberID: memberID, generation: group.generation, heartbeatIntervalMilliseconds: interval, partitions: partitions)
    }

    private func unknownMember(_ memberID: String, _ group: String) -> WireError {
        WireError(.unknownMember, "group '\(group)' has no member '\(memberID)' (its session timed out or the broker restarted); join again")
    }

    private static func newMemberID() -> String {
        "member-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
    }
}
