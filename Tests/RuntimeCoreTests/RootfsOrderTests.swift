import XCTest

@testable import RuntimeCore

/// init's three orderings of rootfs work around `G` (Spec/sync-protocol.md, process model step 3).
final class RootfsOrderTests: XCTestCase {
    func testEveryCombination() {
        for cgroupns in [false, true] {
            for runtimeHooks in [false, true] {
                for createHooks in [false, true] {
                    let order = RootfsOrder(
                        newCgroupNamespace: cgroupns, runtimeHooks: runtimeHooks,
                        createContainerHooks: createHooks)
                    let name = "cgroupns \(cgroupns) runtime hooks \(runtimeHooks) createContainer hooks \(createHooks)"
                    let want: RootfsOrder =
                        cgroupns ? .allAfterGo : (runtimeHooks || createHooks) ? .mountBeforeGo : .allBeforeGo
                    XCTAssertEqual(order, want, name)
                    // Entering before `G` implies mounting before it; a new cgroup namespace defers both.
                    XCTAssertTrue(!order.entersBeforeGo || order.mountsBeforeGo, name)
                    XCTAssertEqual(order.mountsBeforeGo, !cgroupns, name)
                    XCTAssertEqual(order.entersBeforeGo, !cgroupns && !runtimeHooks && !createHooks, name)
                }
            }
        }
    }
}
