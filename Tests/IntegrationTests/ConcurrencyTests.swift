import Foundation
import TestSupport
import XCTest

/// Many runtime processes at once (issue 7): parallel lifecycles, concurrent commands on one
/// container, racing creates of one id. No lost or corrupted state, nothing leaked.
final class ConcurrencyTests: ContainerTestCase {
    /// What the worker threads use instead of `self` (a test case is not Sendable).
    struct CLI: Sendable {
        let root: String
        let environment: [String: String]
        func sl(_ args: [String]) -> RunResult {
            runProgram(Runtime.binary, ["--root", root] + args, timeout: 60, environment: environment)
        }
        func status(_ id: String) -> String? {
            let r = sl(["state", id])
            guard r.status == 0,
                let obj = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            else { return nil }
            return obj["status"] as? String
        }
    }
    var cli: CLI { CLI(root: root.path, environment: taggedEnvironment()) }

    /// Runs `body(worker)` on `workers` threads at once and waits for all; returns the problems they
    /// reported (XCTAssert is only called on the test's own thread).
    func parallel(_ workers: Int, _ body: @escaping @Sendable (Int) -> [String]) -> [String] {
        let lock = NSLock()
        nonisolated(unsafe) var problems: [String] = []
        let done = DispatchSemaphore(value: 0)
        for w in 0..<workers {
            let t = Thread {
                let p = body(w)
                lock.lock()
                problems += p
                lock.unlock()
                done.signal()
            }
            t.start()
        }
        for _ in 0..<workers { done.wait() }
        return problems
    }

    func leftovers(_ ids: [String]) -> [String] {
        var out: [String] = []
        for id in ids {
            if FileManager.default.fileExists(atPath: root.path + "/" + id) { out.append("state dir \(id)") }
            out += cgroupsLeft(id).map { "cgroup \($0)" }
        }
        return out
    }

    /// 100 containers, 10 workers: create, start, then half are killed and deleted, half
    /// force-deleted while running; `list` runs alongside and must always answer with JSON.
    func testHundredContainersInParallel() throws {
        let b = try bundle(ContainerTestCase.args(["sleep", "1000"]))
        let fdsBefore = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        let workers = 10
        let perWorker = 10
        // The cgroup /swiftlet/<id> is shared by every checkout on the machine: a run tag keeps this
        // run's containers out of another run's cgroups.
        let run = UInt32.random(in: 0...UInt32.max)
        let cli = self.cli
        let problems = parallel(workers + 1) { w in
            var p: [String] = []
            if w == workers {  // the observer: list while the others work
                for _ in 0..<30 {
                    let r = cli.sl(["list", "--format", "json"])
                    // `null` when nothing is listed, as runc.
                    let json = try? JSONSerialization.jsonObject(
                        with: Data(r.stdout.utf8), options: [.fragmentsAllowed])
                    if r.status != 0 || json == nil {
                        p.append("list: \(r)")
                    }
                }
                return p
            }
            for i in 0..<perWorker {
                let id = "par-\(run)-\(w)-\(i)"
                func expect(_ args: [String], _ what: String) {
                    let r = cli.sl(args)
                    if r.status != 0 { p.append("\(id) \(what): \(r)") }
                }
                expect(["create", "--bundle", b, id], "create")
                expect(["start", id], "start")
                if cli.status(id) != "running" { p.append("\(id): not running after start") }
                if i % 2 == 0 {
                    expect(["kill", id, "KILL"], "kill")
                    if !waitUntil(timeout: 30, { cli.status(id) == "stopped" }) {
                        p.append("\(id): not stopped after kill")
                    }
                    expect(["delete", id], "delete")
                } else {
                    expect(["delete", "--force", id], "delete --force")
                }
            }
            return p
        }
        XCTAssertEqual(problems, [])
        let ids = (0..<workers).flatMap { w in (0..<perWorker).map { "par-\(run)-\(w)-\($0)" } }
        XCTAssertEqual(leftovers(ids), [])
        XCTAssertEqual(root.containerIDs, [])
        XCTAssertTrue(waitUntil(timeout: 5) { self.taggedProcesses().isEmpty }, "processes left: \(taggedProcesses())")
        XCTAssertEqual(mountsContaining(b), [])
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count, fdsBefore,
            "fds of the test process")
    }

    /// 12 commands at once on one running container: `delete --force` (all must succeed: forced
    /// delete of a container that another delete removed is not an error), `kill` and `state` (each
    /// either works or says the container does not exist / is not running).
    func testConcurrentCommandsOnOneContainer() throws {
        let b = try bundle(ContainerTestCase.args(["sleep", "1000"]))
        for round in 0..<3 {
            let id = "same-\(round)"
            XCTAssertEqual(sl(["run", "-d", "--bundle", b, id]).status, 0)
            let cli = self.cli
            let problems = parallel(12) { w in
                switch w % 3 {
                case 0:
                    let r = cli.sl(["delete", "--force", id])
                    return r.status == 0 ? [] : ["delete --force: \(r)"]
                case 1:
                    let r = cli.sl(["kill", id, "KILL"])
                    let ok = r.status == 0 || r.stderr.contains("does not exist") || r.stderr.contains("not running")
                    return ok ? [] : ["kill: \(r)"]
                default:
                    let r = cli.sl(["state", id])
                    if r.status == 0 {
                        return (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) == nil
                            ? ["state: \(r)"] : []
                    }
                    return r.stderr.contains("does not exist") ? [] : ["state: \(r)"]
                }
            }
            XCTAssertEqual(problems, [], "round \(round)")
            assertNothingLeft(id, bundle: b)
        }
    }

    /// Two creates of one id at once: exactly one wins; the loser says the id exists and leaves the
    /// winner intact (it starts and runs).
    func testRacingCreatesOfOneID() throws {
        let b = try bundle(ContainerTestCase.args(["sleep", "1000"]))
        for round in 0..<5 {
            let id = "race-\(round)"
            let lock = NSLock()
            nonisolated(unsafe) var results: [RunResult] = []
            let cli = self.cli
            _ = parallel(2) { _ in
                let r = cli.sl(["create", "--bundle", b, id])
                lock.lock()
                results.append(r)
                lock.unlock()
                return []
            }
            let winners = results.filter { $0.status == 0 }
            XCTAssertEqual(winners.count, 1, "round \(round): \(results)")
            let losers = results.filter { $0.status != 0 }
            XCTAssertEqual(losers.count, 1)
            XCTAssertTrue(losers.allSatisfy { $0.status == 1 && $0.stderr.contains("already exists") }, "\(losers)")
            XCTAssertEqual(stateStatus(id), "created", "round \(round)")
            XCTAssertEqual(sl(["start", id]).status, 0)
            XCTAssertEqual(stateStatus(id), "running")
            XCTAssertEqual(sl(["delete", "--force", id]).status, 0)
            assertNothingLeft(id, bundle: b)
        }
    }
}
