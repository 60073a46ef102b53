import Foundation
import TestSupport
import XCTest

/// The hostile-config corpus (TestSupport's `HostileConfigs`, issue 7) end to end: refused with a clear
/// error naming the field, exit status 1 (no crash), and nothing left behind.
final class HostileConfigTests: ContainerTestCase {
    /// Those only creating the container refuses, and a sample of the rest: the binary's exit
    /// status and that nothing is left behind. (RuntimeCoreTests.HostileConfigPlanTests checks every
    /// config the plan refuses, in-process.)
    func testCorpusIsRefusedCleanly() throws {
        let corpus = HostileConfigs.corpus
        let sample = HostileConfigs.refusedLater.union([0, 5, 23, 30, 49].filter { $0 < corpus.count })
        for i in sample.sorted() {
            let (field, edit) = corpus[i]
            let id = "hostile\(i)"
            let b = try bundle(edit)
            let r = sl(["create", "--bundle", b, id])
            XCTAssertEqual(r.status, 1, "#\(i) \(field): status \(r.status) stderr \(r.stderr)")
            // The field's name in the error is swiftlet's wording (runc and crun word theirs otherwise).
            if isSwiftlet {
                XCTAssertTrue(r.stderr.contains(field), "#\(i): \(r.stderr.debugDescription) does not name \(field)")
            }
            assertNothingLeft(id, bundle: b)
            try? FileManager.default.removeItem(atPath: b)
        }
    }
}
