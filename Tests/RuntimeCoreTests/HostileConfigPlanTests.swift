import Foundation
import OCI
import TestSupport
import XCTest

@testable import RuntimeCore

/// The hostile-config corpus (TestSupport's `HostileConfigs`) refused in-process, as `create` does
/// before it forks: `loadSpec` + `ContainerPlan`, the error naming the field, no descriptor left open.
/// The few only creating the container refuses (`refusedLater`) run end to end in
/// IntegrationTests.HostileConfigTests.
final class HostileConfigPlanTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/rootfs", withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// The error planning the config gives, nil when it is accepted.
    func planError(_ edit: HostileConfigs.Edit) throws -> RuntimeError? {
        var config = defaultConfig(rootfs: dir + "/rootfs")
        edit(&config)
        try writeConfigThrowing(config, to: dir)
        do {
            let (spec, json) = try loadSpec(bundle: dir)
            let plan = try ContainerPlan(
                spec: spec, specJSON: json, id: "hostile", bundle: dir, noPivot: false,
                noNewKeyring: false, preserveFds: 0, listenFds: 0, cgroupBinds: [])
            plan.closeFds()
            return nil
        } catch { return error }
    }

    func testCorpusIsRefusedBeforeAnythingIsMade() throws {
        XCTAssertGreaterThanOrEqual(HostileConfigs.corpus.count, 50)
        let fds = openFdCount()
        var accepted: [Int] = []
        for (i, (field, edit)) in HostileConfigs.corpus.enumerated() {
            guard let error = try planError(edit) else {
                accepted.append(i)
                continue
            }
            XCTAssertFalse(HostileConfigs.refusedLater.contains(i), "#\(i) \(field) is refused by the plan: \(error)")
            XCTAssertTrue(
                error.description.contains(field), "#\(i): \(error.description.debugDescription) does not name \(field)"
            )
        }
        XCTAssertEqual(
            Set(accepted), HostileConfigs.refusedLater,
            "accepted by the plan: \(accepted.map { "#\($0) \(HostileConfigs.corpus[$0].field)" })")
        XCTAssertEqual(openFdCount(), fds, "descriptors left open")
    }

    func testTheDefaultConfigIsAccepted() throws {
        XCTAssertNil(try planError { _ in })
    }

    func openFdCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }
}
