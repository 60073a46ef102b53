import Glibc
import LinuxSystem
import OCI
import Seccomp
import XCTest

@testable import RuntimeCore

/// Records the credential calls instead of making them; `failing` makes one call fail with an errno.
final class RecordingCredentials: CredentialCalls {
    var calls: [String] = []
    var failing: [String: Int32] = [:]

    private func record(_ call: String, _ name: String) throws(SysError) {
        calls.append(call)
        if let e = failing[name] { throw SysError(name, errno: e) }
    }

    func setKeepCaps(_ on: Bool) throws(SysError) { try record("keepcaps=\(on ? 1 : 0)", "keepcaps") }
    func setGroups(_ gids: [gid_t]) throws(SysError) { try record("setgroups\(gids)", "setgroups") }
    func setResGid(_ gid: gid_t) throws(SysError) { try record("setresgid(\(gid))", "setresgid") }
    func setResUid(_ uid: uid_t) throws(SysError) { try record("setresuid(\(uid))", "setresuid") }
    func dropBounding(keep: [Int32]) throws(SysError) { try record("bounding\(keep)", "bounding") }
    func setCapabilities(_ caps: CapabilitySets) throws(SysError) {
        try record("capset(e\(caps.effective) p\(caps.permitted) a\(caps.ambient))", "capset")
    }
    func setNoNewPrivs() throws(SysError) { try record("no_new_privs", "no_new_privs") }
}

/// The order in which a container process takes on its user, groups and capabilities
/// (CredentialSwitch, used by applyProcess), checked against a recording fake: no root needed.
final class CredentialOrderTests: XCTestCase {
    let kill = CapabilitySets.value(of: "CAP_KILL") ?? -1
    let chown = CapabilitySets.value(of: "CAP_CHOWN") ?? -1
    let raw = CapabilitySets.value(of: "CAP_NET_RAW") ?? -1

    func plan(_ json: String, seccomp: Bool = false) throws -> ProcessPlan {
        var p = try ProcessPlan(decodeJSON(OCI.Process.self, from: Array(json.utf8)))
        if seccomp {
            let profile = try decodeJSON(OCI.Seccomp.self, from: Array(#"{"defaultAction": "SCMP_ACT_ALLOW"}"#.utf8))
            p.seccomp = try SeccompFilter.build(profile)
        }
        return p
    }

    /// become + restrict, with the seccomp loads recorded in between.
    func run(_ p: ProcessPlan, _ fake: RecordingCredentials) throws(SysError) {
        let load: CredentialSwitch.LoadSeccomp = { _ in fake.calls.append("seccomp") }
        try CredentialSwitch.become(p, fake, loadSeccomp: load)
        fake.calls.append("exec-label")
        try CredentialSwitch.restrict(p, fake, loadSeccomp: load)
    }

    func testRootClearsGroupsThenGidThenUidThenCapabilities() throws {
        let p = try plan(
            #"""
            {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
             "capabilities": {"bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}}
            """#)
        let fake = RecordingCredentials()
        try run(p, fake)
        XCTAssertEqual(
            fake.calls,
            [
                "bounding[\(kill), \(chown)]", "keepcaps=1", "setgroups[]", "setresgid(0)",
                "setresuid(0)", "keepcaps=0", "capset(e[\(kill)] p[\(kill)] a[])", "exec-label",
            ])
    }

    func testNonRootWithoutAdditionalGidsKeepsTheGroupList() throws {
        let fake = RecordingCredentials()
        try run(plan(#"{"args": ["sh"], "cwd": "/", "user": {"uid": 1000, "gid": 100}}"#), fake)
        XCTAssertEqual(fake.calls, ["keepcaps=1", "setresgid(100)", "setresuid(1000)", "keepcaps=0", "exec-label"])
    }

    func testAdditionalGidsAreSetBeforeTheGidAndUid() throws {
        let fake = RecordingCredentials()
        try run(
            plan(#"{"args": ["sh"], "cwd": "/", "user": {"uid": 1000, "gid": 100, "additionalGids": [5, 6]}}"#), fake)
        XCTAssertEqual(
            fake.calls,
            [
                "keepcaps=1", "setgroups[5, 6]", "setresgid(100)", "setresuid(1000)", "keepcaps=0",
                "exec-label",
            ])
    }

    func testSeccompWithoutNoNewPrivsIsLoadedWhilePrivileged() throws {
        let fake = RecordingCredentials()
        try run(plan(#"{"args": ["sh"], "cwd": "/", "user": {"uid": 1000, "gid": 1000}}"#, seccomp: true), fake)
        XCTAssertEqual(
            fake.calls,
            [
                "seccomp", "keepcaps=1", "setresgid(1000)", "setresuid(1000)", "keepcaps=0",
                "exec-label",
            ])
    }

    func testNoNewPrivsAndItsSeccompFilterComeLast() throws {
        let fake = RecordingCredentials()
        let p = try plan(
            #"{"args": ["sh"], "cwd": "/", "noNewPrivileges": true, "user": {"uid": 0, "gid": 0}}"#,
            seccomp: true)
        try run(p, fake)
        XCTAssertEqual(
            fake.calls,
            [
                "keepcaps=1", "setgroups[]", "setresgid(0)", "setresuid(0)", "keepcaps=0",
                "exec-label", "no_new_privs", "seccomp",
            ])
        let plain = RecordingCredentials()
        try run(plan(#"{"args": ["sh"], "cwd": "/", "noNewPrivileges": true, "user": {"uid": 0, "gid": 0}}"#), plain)
        XCTAssertEqual(plain.calls.suffix(2), ["exec-label", "no_new_privs"])
    }

    func testAmbientCapabilitiesGoWithTheCapset() throws {
        let p = try plan(
            #"""
            {"args": ["sh"], "cwd": "/", "user": {"uid": 1000, "gid": 1000},
             "capabilities": {"bounding": ["CAP_NET_RAW"], "effective": ["CAP_NET_RAW"], "permitted": ["CAP_NET_RAW"],
                              "inheritable": ["CAP_NET_RAW"], "ambient": ["CAP_NET_RAW"]}}
            """#)
        let fake = RecordingCredentials()
        try run(p, fake)
        XCTAssertEqual(
            fake.calls,
            [
                "bounding[\(raw)]", "keepcaps=1", "setresgid(1000)", "setresuid(1000)", "keepcaps=0",
                "capset(e[\(raw)] p[\(raw)] a[\(raw)])", "exec-label",
            ])
    }

    /// In a user namespace whose setgroups is "deny", setgroups fails with EPERM: tolerated when
    /// there is nothing to set (root's empty list), an error when additionalGids ask for groups.
    func testUserNamespaceWithSetgroupsDenied() throws {
        let root = RecordingCredentials()
        root.failing = ["setgroups": EPERM]
        try run(plan(#"{"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}}"#), root)
        XCTAssertEqual(
            root.calls, ["keepcaps=1", "setgroups[]", "setresgid(0)", "setresuid(0)", "keepcaps=0", "exec-label"])

        let withGroups = RecordingCredentials()
        withGroups.failing = ["setgroups": EPERM]
        let p = try plan(#"{"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0, "additionalGids": [10]}}"#)
        XCTAssertThrowsError(try run(p, withGroups)) { error in
            XCTAssertEqual((error as? SysError)?.op, "setgroups")
            XCTAssertEqual((error as? SysError)?.errno, EPERM)
        }
        XCTAssertEqual(withGroups.calls, ["keepcaps=1", "setgroups[10]"], "nothing after the failed setgroups")
    }

    /// An id the user namespace does not map (EINVAL): the switch stops there, capabilities untouched.
    func testUnmappedUidStopsBeforeCapabilities() throws {
        let fake = RecordingCredentials()
        fake.failing = ["setresuid": EINVAL]
        let p = try plan(
            #"""
            {"args": ["sh"], "cwd": "/", "user": {"uid": 4000, "gid": 0},
             "capabilities": {"effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}}
            """#)
        XCTAssertThrowsError(try run(p, fake))
        XCTAssertEqual(fake.calls, ["bounding[]", "keepcaps=1", "setresgid(0)", "setresuid(4000)"])
    }
}
