import CLinux
import Cgroups
import XCTest

@testable import RuntimeCore

/// The cgroup placement table of Spec/sync-protocol.md, row by row: layout x user namespace x
/// clone3 (x driver) for create, layout x cgroup x clone3 for exec. No root, no kernel.
final class CgroupPlacementTests: XCTestCase {
    enum Layout: CaseIterable { case v1, hybrid, v2 }
    enum UserNS: CaseIterable { case none, new, joined }

    let newNamespaces = SL_CLONE_NEWPID | SL_CLONE_NEWNS

    func namespaces(_ user: UserNS) -> NamespacePlan {
        var ns = NamespacePlan()
        ns.newFlags = newNamespaces
        switch user {
        case .none: break
        case .new: ns.newUser = true
        case .joined: ns.join.append((.user, -1))  // never opened: the plan is only looked at
        }
        return ns
    }

    func create(_ layout: Layout, _ user: UserNS, systemd: Bool = false) -> CgroupPlacement {
        let ns = namespaces(user)
        return .forCreate(
            cgroup2Dir: layout == .v1 ? nil : "/sys/fs/cgroup/unified/c1", hasV1: layout != .v2,
            systemd: systemd, newUserNamespace: ns.newUser, namespaceCloneFlags: ns.cloneFlags)
    }

    struct Row {
        var spawn: CgroupPlacement.Spawn
        var clone3: Bool
        var selfJoin: Bool
        var parentIfClone3: CgroupPlacement.ParentJoin
        var parentIfNoClone3: CgroupPlacement.ParentJoin
    }

    func check(_ p: CgroupPlacement, _ row: Row, _ name: String) {
        XCTAssertEqual(p.spawn, row.spawn, name)
        XCTAssertEqual(p.cloneInto != nil, row.clone3, name)
        XCTAssertEqual(p.selfJoinV1, row.selfJoin, name)
        XCTAssertEqual(p.parentJoin(clonedIntoCgroup2: true), row.parentIfClone3, name)
        XCTAssertEqual(p.parentJoin(clonedIntoCgroup2: false), row.parentIfNoClone3, name)
    }

    /// Every create combination with the cgroupfs driver, as the table in Spec/sync-protocol.md.
    func testCreateTable() {
        let byClone = CgroupPlacement.Spawn.initByClone(namespaces: newNamespaces)
        let byCloneWithUser = CgroupPlacement.Spawn.initByClone(namespaces: newNamespaces | SL_CLONE_NEWUSER)
        let order = CgroupPlacement.Spawn.middleProcess(.namespaceOrder)
        let afterV1 = CgroupPlacement.Spawn.middleProcess(.userNamespaceAfterV1Join)
        let table: [(Layout, UserNS, Row)] = [
            (
                .v1, .none,
                Row(spawn: byClone, clone3: false, selfJoin: true, parentIfClone3: .nothing, parentIfNoClone3: .nothing)
            ),
            (
                .v1, .new,
                Row(spawn: afterV1, clone3: false, selfJoin: true, parentIfClone3: .nothing, parentIfNoClone3: .nothing)
            ),
            (
                .v1, .joined,
                Row(spawn: order, clone3: false, selfJoin: true, parentIfClone3: .nothing, parentIfNoClone3: .nothing)
            ),
            (
                .hybrid, .none,
                Row(
                    spawn: byClone, clone3: true, selfJoin: true, parentIfClone3: .nothing,
                    parentIfNoClone3: .write(.unifiedOnly))
            ),
            (
                .hybrid, .new,
                Row(
                    spawn: afterV1, clone3: true, selfJoin: true, parentIfClone3: .nothing,
                    parentIfNoClone3: .write(.unifiedOnly))
            ),
            (
                .hybrid, .joined,
                Row(
                    spawn: order, clone3: true, selfJoin: true, parentIfClone3: .nothing,
                    parentIfNoClone3: .write(.unifiedOnly))
            ),
            (
                .v2, .none,
                Row(
                    spawn: byClone, clone3: true, selfJoin: false, parentIfClone3: .nothing,
                    parentIfNoClone3: .write(.unifiedOnly))
            ),
            (
                .v2, .new,
                Row(
                    spawn: byCloneWithUser, clone3: true, selfJoin: false, parentIfClone3: .nothing,
                    parentIfNoClone3: .write(.unifiedOnly))
            ),
            (
                .v2, .joined,
                Row(
                    spawn: order, clone3: true, selfJoin: false, parentIfClone3: .nothing,
                    parentIfNoClone3: .write(.unifiedOnly))
            ),
        ]
        XCTAssertEqual(table.count, Layout.allCases.count * UserNS.allCases.count)
        for (layout, user, row) in table { check(create(layout, user), row, "create \(layout) userns \(user)") }
    }

    /// The systemd driver: no clone3, no self-join (the unit is made once init's pid is known), so
    /// a new user namespace is made by the clone on every layout.
    func testCreateWithSystemd() {
        for layout in Layout.allCases {
            for user in UserNS.allCases {
                let spawn: CgroupPlacement.Spawn =
                    user == .joined
                    ? .middleProcess(.namespaceOrder)
                    : .initByClone(namespaces: newNamespaces | (user == .new ? SL_CLONE_NEWUSER : 0))
                check(
                    create(layout, user, systemd: true),
                    Row(
                        spawn: spawn, clone3: false, selfJoin: false, parentIfClone3: .systemdUnit,
                        parentIfNoClone3: .systemdUnit),
                    "systemd \(layout) userns \(user)")
            }
        }
    }

    /// Time offsets and a joined PID namespace also need the middle process, whatever the layout.
    func testNamespaceOrderNeedsMiddleProcess() {
        var timens = namespaces(.none)
        timens.timeOffsets = "monotonic 1 0\n"
        var joinedPid = namespaces(.none)
        joinedPid.join.append((.pid, -1))
        for ns in [timens, joinedPid] {
            for layout in Layout.allCases {
                let p = CgroupPlacement.forCreate(
                    cgroup2Dir: layout == .v1 ? nil : "/u", hasV1: layout != .v2, systemd: false,
                    newUserNamespace: false, namespaceCloneFlags: ns.cloneFlags)
                XCTAssertEqual(p.spawn, .middleProcess(.namespaceOrder), "\(layout)")
                XCTAssertFalse(p.initByClone)
                XCTAssertEqual(p.cloneNamespaces, 0)
            }
        }
    }

    /// exec: always a middle process (it joins init's namespaces, then forks), cloned into the
    /// cgroup2 directory when there is one, self-joining the v1 hierarchies; no cgroup: nothing.
    func testExecTable() {
        let exec = CgroupPlacement.Spawn.middleProcess(.exec)
        let table: [(String, CgroupPlacement, Row)] = [
            (
                "v1", .forExec(cgroup2Dir: nil, hasV1: true),
                Row(spawn: exec, clone3: false, selfJoin: true, parentIfClone3: .nothing, parentIfNoClone3: .nothing)
            ),
            (
                "hybrid", .forExec(cgroup2Dir: "/u", hasV1: true),
                Row(
                    spawn: exec, clone3: true, selfJoin: true, parentIfClone3: .nothing,
                    parentIfNoClone3: .write(.unifiedOnly))
            ),
            (
                "v2", .forExec(cgroup2Dir: "/u", hasV1: false),
                Row(
                    spawn: exec, clone3: true, selfJoin: false, parentIfClone3: .nothing,
                    parentIfNoClone3: .write(.unifiedOnly))
            ),
            (
                "no cgroup", .forExec(nil),
                Row(spawn: exec, clone3: false, selfJoin: false, parentIfClone3: .nothing, parentIfNoClone3: .nothing)
            ),
        ]
        for (name, p, row) in table { check(p, row, "exec \(name)") }
    }

    /// The manager-based entry points read the layout from the cgroup's directories.
    func testFromManager() {
        let hybrid = CgroupLayout.hybrid(
            hierarchies: ["memory": "/sys/fs/cgroup/memory"], unified: "/sys/fs/cgroup/unified")
        let m = CgroupManager(
            layout: hybrid, paths: ["memory": "/sys/fs/cgroup/memory/c1", "": "/sys/fs/cgroup/unified/c1"])
        let p = CgroupPlacement.forCreate(m, systemd: false, namespaces: namespaces(.new))
        XCTAssertEqual(p.cloneInto, "/sys/fs/cgroup/unified/c1")
        XCTAssertTrue(p.selfJoinV1)
        XCTAssertEqual(p.spawn, .middleProcess(.userNamespaceAfterV1Join))
        let v2 = CgroupManager(layout: .v2(mountPoint: "/sys/fs/cgroup"), paths: ["": "/sys/fs/cgroup/c1"])
        let e = CgroupPlacement.forExec(v2)
        XCTAssertEqual(e.cloneInto, "/sys/fs/cgroup/c1")
        XCTAssertFalse(e.selfJoinV1)
        XCTAssertEqual(e.parentJoin(clonedIntoCgroup2: false), .write(.unifiedOnly))
    }
}
