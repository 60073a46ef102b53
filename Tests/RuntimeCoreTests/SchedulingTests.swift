import OCI
import XCTest

@testable import RuntimeCore

/// process.scheduler and linux.memoryPolicy as the kernel will get them, without a container.
final class SchedulingTests: XCTestCase {
    func testSchedulerValuesAndFlags() throws {
        let p = try SchedulerPlan(
            Scheduler(
                policy: "SCHED_RR", nice: -3, priority: 10,
                flags: ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_KEEP_PARAMS"]), field: "f")
        XCTAssertEqual([p.policy, p.priority], [2, 10])
        XCTAssertEqual(p.flags, 0x11)
        XCTAssertEqual(p.nice, -3)
        let dl = try SchedulerPlan(
            Scheduler(policy: "SCHED_DEADLINE", runtime: 10, deadline: 20, period: 30), field: "f")
        XCTAssertEqual([dl.runtime, dl.deadline, dl.period], [10, 20, 30])
        XCTAssertNoThrow(try SchedulerPlan(Scheduler(policy: "SCHED_DEADLINE", runtime: 10, deadline: 20), field: "f"))
    }

    func testSchedulerRefusals() {
        let bad: [Scheduler] = [
            Scheduler(policy: "SCHED_NOPE"), Scheduler(policy: "SCHED_OTHER", nice: 20),
            Scheduler(policy: "SCHED_OTHER", nice: -21),
            Scheduler(policy: "SCHED_FIFO", priority: 100), Scheduler(policy: "SCHED_RR"),
            Scheduler(policy: "SCHED_BATCH", priority: 1),
            Scheduler(policy: "SCHED_IDLE", flags: ["X"]), Scheduler(policy: "SCHED_OTHER", period: 5),
            Scheduler(policy: "SCHED_DEADLINE"), Scheduler(policy: "SCHED_DEADLINE", runtime: 30, deadline: 20),
            Scheduler(policy: "SCHED_DEADLINE", runtime: 10, deadline: 20, period: 15),
        ]
        for s in bad { XCTAssertThrowsError(try SchedulerPlan(s, field: "process.scheduler"), "\(s)") }
    }

    func testMemoryPolicyNodeMaskAndFlags() throws {
        let p = try MemoryPolicyPlan(
            MemoryPolicy(mode: "MPOL_INTERLEAVE", nodes: "0-2,65", flags: ["MPOL_F_STATIC_NODES"]))
        XCTAssertEqual(p.mode, 3 | 1 << 15)
        XCTAssertEqual(p.nodeMask, [0b111, 0b10])
        XCTAssertEqual(p.maxNode, 129)
        let local = try MemoryPolicyPlan(MemoryPolicy(mode: "MPOL_LOCAL"))
        XCTAssertEqual(local.mode, 4)
        XCTAssertEqual(local.nodeMask, [])
        XCTAssertEqual(local.maxNode, 0)
        XCTAssertNoThrow(try MemoryPolicyPlan(MemoryPolicy(mode: "MPOL_PREFERRED")))
    }

    func testMemoryPolicyRefusals() {
        let bad: [MemoryPolicy] = [
            MemoryPolicy(mode: "MPOL_NOPE"), MemoryPolicy(mode: "MPOL_DEFAULT", nodes: "0"),
            MemoryPolicy(mode: "MPOL_LOCAL", flags: ["MPOL_F_STATIC_NODES"]), MemoryPolicy(mode: "MPOL_BIND"),
            MemoryPolicy(mode: "MPOL_BIND", nodes: "a"), MemoryPolicy(mode: "MPOL_BIND", nodes: "1-0"),
            MemoryPolicy(mode: "MPOL_BIND", nodes: "0,,1"), MemoryPolicy(mode: "MPOL_BIND", nodes: "5000"),
            MemoryPolicy(mode: "MPOL_BIND", nodes: "0", flags: ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]),
            MemoryPolicy(mode: "MPOL_BIND", nodes: "0", flags: ["MPOL_F_NOPE"]),
        ]
        for m in bad { XCTAssertThrowsError(try MemoryPolicyPlan(m), "\(m)") }
    }

    /// The plan and `features` share one table (OCI/Features.swift); what this kernel takes is part of it.
    func testFeaturesListTheMemoryPolicyTables() {
        XCTAssertEqual(Set(memoryPolicyModes.map(\.name)), Set(MemoryPolicyPlan.modes.keys))
        XCTAssertEqual(Set(memoryPolicyFlags.map(\.name)), Set(MemoryPolicyPlan.flagTable.keys))
        let here = MemoryPolicyPlan.supported()
        XCTAssertTrue(Set(here.modes ?? []).isSubset(of: MemoryPolicyPlan.modes.keys), "\(here)")
        XCTAssertTrue(Set(here.flags ?? []).isSubset(of: MemoryPolicyPlan.flagTable.keys), "\(here)")
        XCTAssertTrue(
            here.modes?.contains("MPOL_DEFAULT") ?? false, "every kernel with set_mempolicy takes MPOL_DEFAULT")
    }

    func testExecCPUAffinityMasks() throws {
        XCTAssertEqual(try cpuMask("0-2,65", field: "f"), [0b111, 0b10])
        XCTAssertNil(try cpuMask("", field: "f"), "empty: leave the affinity alone")
        XCTAssertNil(try cpuMask(nil, field: "f"))
        for bad in ["x", "3-1", "0,,1", "9000"] { XCTAssertThrowsError(try cpuMask(bad, field: "f"), bad) }
        let p = try ProcessPlan(Process(args: ["/bin/true"], cwd: "/"))
        XCTAssertNil(p.initialAffinity)
    }
}
