import Argv
import Glibc
import LinuxSystem
import OCI
import XCTest

@testable import RuntimeCLI
@testable import RuntimeCore

/// What the verbs make of their input before they touch a container: exec's overrides, update's
/// flags, kill's signal names, list's table, the id-map requests of mounts. No root, no container.
final class VerbInputTests: XCTestCase {
    // MARK: exec overrides

    func testExecCapsAreAddedToEverySetAndToAmbientOnlyWithAnInheritableSet() throws {
        var o = ExecOverrides()
        o.args = ["/bin/true"]
        o.caps = ["CAP_NET_RAW"]
        var base = Process(args: ["/init"], cwd: "/work")
        base.capabilities = Capabilities()
        base.capabilities?.bounding = ["CAP_KILL"]
        let p = try o.apply(to: base)
        XCTAssertEqual(p.capabilities?.bounding, ["CAP_KILL", "CAP_NET_RAW"])
        XCTAssertEqual(p.capabilities?.effective, ["CAP_NET_RAW"])
        XCTAssertEqual(p.capabilities?.permitted, ["CAP_NET_RAW"])
        XCTAssertNil(p.capabilities?.ambient)
        XCTAssertEqual(p.cwd, "/work", "no --cwd keeps the container's")

        base.capabilities?.inheritable = []
        XCTAssertEqual(try o.apply(to: base).capabilities?.ambient, ["CAP_NET_RAW"])
    }

    func testExecFlagsOnlyTightenAndLabelsReplace() throws {
        var o = ExecOverrides()
        o.args = ["/bin/true"]
        var base = Process(args: ["/init"], cwd: "/")
        base.noNewPrivileges = true
        base.apparmorProfile = "container-default"
        XCTAssertEqual(try o.apply(to: base).noNewPrivileges, true, "exec without --no-new-privs keeps the config's")
        XCTAssertEqual(try o.apply(to: base).apparmorProfile, "container-default")
        XCTAssertEqual(try o.apply(to: base).terminal, false, "exec's terminal is its own --tty")
        o.noNewPrivs = true
        o.appArmorProfile = "other"
        o.processLabel = "system_u:system_r:container_t:s0"
        base.noNewPrivileges = false
        let p = try o.apply(to: base)
        XCTAssertEqual(p.noNewPrivileges, true)
        XCTAssertEqual(p.apparmorProfile, "other")
        XCTAssertEqual(p.selinuxLabel, "system_u:system_r:container_t:s0")
    }

    func testExecUserWithoutGidKeepsTheConfigsGidAndGidsAppend() throws {
        var o = ExecOverrides()
        o.args = ["/bin/true"]
        o.user = "1000"
        o.additionalGids = ["5", "6"]
        var base = Process(args: ["/init"], cwd: "/")
        base.user = User(uid: 0, gid: 42, additionalGids: [1])
        let p = try o.apply(to: base)
        XCTAssertEqual(p.user.uid, 1000)
        XCTAssertEqual(p.user.gid, 42)
        XCTAssertEqual(p.user.additionalGids, [1, 5, 6])
    }

    // MARK: update flags

    func flags(_ values: [String: String]) throws -> UpdateFlags {
        try UpdateFlags(ParsedOptions(values: values.mapValues { [$0] }))
    }

    func resources(_ json: String) throws -> Resources {
        try decodeJSON(Resources.self, from: Array(json.utf8))
    }

    func testUpdateFlagsMergeFieldByFieldIntoTheCurrentResources() throws {
        let current = try resources(
            #"{"memory": {"limit": 1048576, "swap": 2097152}, "cpu": {"shares": 512, "cpus": "0"}}"#)
        let r = try flags(["memory": "512m", "cpu-quota": "20000", "cpuset-mems": "0"]).apply(to: current)
        XCTAssertEqual(r.memory?.limit, 512 << 20)
        XCTAssertEqual(r.memory?.swap, 2_097_152, "a flag not given leaves its field")
        XCTAssertEqual(r.cpu?.shares, 512)
        XCTAssertEqual(r.cpu?.quota, 20000)
        XCTAssertEqual(r.cpu?.cpus, "0")
        XCTAssertEqual(r.cpu?.mems, "0")
        XCTAssertNil(r.pids)
        XCTAssertEqual(try flags([:]).apply(to: current), current, "no flags: nothing changes")
    }

    func testUnlimitedMemoryLiftsSwapUnlessSwapIsGiven() throws {
        let current = try resources(#"{"memory": {"limit": 1048576, "swap": 2097152}}"#)
        XCTAssertEqual(try flags(["memory": "-1"]).apply(to: current).memory?.swap, -1)
        XCTAssertEqual(try flags(["memory": "-1", "memory-swap": "4m"]).apply(to: current).memory?.swap, 4 << 20)
    }

    func testPidsLimitZeroLeavesTheLimitAsRunc() throws {
        let current = try resources(#"{"pids": {"limit": 100}}"#)
        XCTAssertEqual(try flags(["pids-limit": "0"]).apply(to: current).pids?.limit, 100)
        XCTAssertEqual(try flags(["pids-limit": "-1"]).apply(to: current).pids?.limit, -1)
        XCTAssertEqual(try flags(["blkio-weight": "300"]).apply(to: current).blockIO?.weight, 300)
        // -r FILE: groups replace, a pids limit of 0 does not.
        let file = try resources(#"{"pids": {"limit": 0}, "cpu": {"shares": 2}}"#)
        XCTAssertEqual(merged(current, with: file).pids?.limit, 100)
        XCTAssertEqual(merged(current, with: file).cpu?.shares, 2)
    }

    func testBadUpdateValuesNameTheFlag() {
        for (flag, value) in [
            ("memory", "lots"), ("cpu-share", "-1"), ("blkio-weight", "70000"), ("pids-limit", "1.5"),
        ] {
            XCTAssertThrowsError(try flags([flag: value])) { error in
                XCTAssertEqual((error as? RuntimeError)?.message, "invalid value for --\(flag): \(value)")
            }
        }
        XCTAssertEqual(parseByteSize("1G"), 1 << 30)
        XCTAssertEqual(parseByteSize("100kb"), 102_400)
        XCTAssertNil(parseByteSize("9999999999p"), "overflow")
    }

    // MARK: signals

    func testSignalNamesNumbersAndRealtimeOffsets() {
        XCTAssertEqual(Signals.parse("KILL"), SIGKILL)
        XCTAssertEqual(Signals.parse("SIGKILL"), SIGKILL)
        XCTAssertEqual(Signals.parse("sigterm"), SIGTERM)
        XCTAssertEqual(Signals.parse("9"), 9)
        XCTAssertEqual(Signals.parse("64"), 64)
        XCTAssertEqual(Signals.parse("RTMIN"), 34)
        XCTAssertEqual(Signals.parse("SIGRTMIN+3"), 37)
        XCTAssertEqual(Signals.parse("RTMAX-2"), 62)
        for bad in ["0", "65", "-1", "BOGUS", "RTMIN-1", "RTMAX+1", "RTMIN+31", "SIG", ""] {
            XCTAssertNil(Signals.parse(bad), bad)
        }
    }

    // MARK: list

    func testListTableQuietAndJSON() {
        let states = [
            State(id: "a", status: "running", pid: 42, bundle: "/b", created: "2026-01-01T00:00:00Z", owner: "root"),
            State(id: "a-much-longer-id", status: "stopped", pid: 0, bundle: "/bundle", owner: ""),
        ]
        // runc's tabwriter: each column as wide as its widest cell plus 3, at least 12.
        let table = listOutput(states, format: "table", quiet: false).split(separator: "\n").map(String.init)
        XCTAssertEqual(
            table,
            [
                "ID                 PID         STATUS      BUNDLE      CREATED                OWNER",
                "a                  42          running     /b          2026-01-01T00:00:00Z   root",
                "a-much-longer-id   0           stopped     /bundle                            ",
            ])
        XCTAssertEqual(listOutput(states, format: "table", quiet: true), "a\na-much-longer-id")
        XCTAssertEqual(
            listOutput([], format: "table", quiet: false),
            "ID          PID         STATUS      BUNDLE      CREATED     OWNER")
        XCTAssertEqual(listOutput([], format: "table", quiet: true), "")
        XCTAssertEqual(listOutput([], format: "json", quiet: false), "null")
        let json = listOutput(states, format: "json", quiet: false)
        XCTAssertEqual(try decodeJSON([State].self, from: Array(json.utf8)), states)
    }

    // MARK: id-mapped mounts

    func testIDMapRequests() {
        var m = Mount(destination: "/data", type: "bind", source: "/srv", options: ["rbind"])
        XCTAssertNil(IDMapRequest(m))
        m.options = ["rbind", "idmap"]
        XCTAssertEqual(IDMapRequest(m), false)
        m.options = ["rbind", "ridmap"]
        XCTAssertEqual(IDMapRequest(m), true)
        m.options = ["rbind"]
        m.uidMappings = [IDMapping(containerID: 0, hostID: 1000, size: 1)]
        XCTAssertEqual(IDMapRequest(m), false, "mappings without the option ask for a non-recursive map")
    }

    func testHostIDsThroughTheMappings() {
        let maps = [
            IDMapping(containerID: 0, hostID: 100_000, size: 1000), IDMapping(containerID: 1000, hostID: 5000, size: 1),
        ]
        XCTAssertEqual(hostID(of: 0, in: maps), 100_000)
        XCTAssertEqual(hostID(of: 999, in: maps), 100_999)
        XCTAssertEqual(hostID(of: 1000, in: maps), 5000)
        XCTAssertEqual(hostID(of: 1001, in: maps), 1001, "unmapped ids stay as they are")
        XCTAssertEqual(hostID(of: 7, in: nil), 7)
    }
}
