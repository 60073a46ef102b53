import XCTest

@testable import Checkpoint

/// The protobuf wire format as CRIU's RPC uses it. Expected bytes are worked out by hand from the
/// protobuf encoding rules (key = field << 3 | wire type; varints 7 bits per byte, low first).
final class ProtoWireTests: XCTestCase {
    func testVarints() {
        func enc(_ v: UInt64) -> [UInt8] {
            var w = ProtoWriter()
            w.varint(v)
            return w.bytes
        }
        XCTAssertEqual(enc(0), [0x00])
        XCTAssertEqual(enc(1), [0x01])
        XCTAssertEqual(enc(127), [0x7f])
        XCTAssertEqual(enc(128), [0x80, 0x01])
        XCTAssertEqual(enc(300), [0xac, 0x02])
        XCTAssertEqual(enc(UInt64.max), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
    }

    func testScalarFields() {
        var w = ProtoWriter()
        w.int32(1, 150)  // 08 96 01
        w.bool(3, true)  // 18 01
        w.string(10, "dump.log")  // 52 08 'dump.log'
        XCTAssertEqual(w.bytes, [0x08, 0x96, 0x01, 0x18, 0x01, 0x52, 0x08] + Array("dump.log".utf8))
    }

    func testNegativeInt32IsTenBytes() throws {
        var w = ProtoWriter()
        w.int32(2, -1)
        XCTAssertEqual(w.bytes, [0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
        let f = try ProtoReader.fields(w.bytes)
        XCTAssertEqual(f.count, 1)
        XCTAssertEqual(f[0].field, 2)
        XCTAssertEqual(f[0].value.int32, -1)
    }

    func testNestedMessageAndRoundTrip() throws {
        var w = ProtoWriter()
        w.message(23) {
            $0.string(1, "/data")
            $0.string(2, "/host/data")
        }
        // 23 << 3 | 2 = 186 = varint ba 01
        XCTAssertEqual(Array(w.bytes.prefix(3)), [0xba, 0x01, UInt8(w.bytes.count - 3)])
        let outer = try ProtoReader.fields(w.bytes)
        XCTAssertEqual(outer.map(\.field), [23])
        let inner = try ProtoReader.fields(outer[0].value.data ?? [])
        XCTAssertEqual(inner.map(\.field), [1, 2])
        XCTAssertEqual(inner.map { $0.value.string }, ["/data", "/host/data"])
    }

    func testReaderSkipsFixedWidthFields() throws {
        // field 1 fixed64, field 2 fixed32, field 3 varint 7
        let bytes: [UInt8] = [0x09] + [UInt8](repeating: 0, count: 8) + [0x15, 1, 2, 3, 4, 0x18, 0x07]
        let f = try ProtoReader.fields(bytes)
        XCTAssertEqual(f.map(\.field), [3])
        XCTAssertEqual(f[0].value.uint64, 7)
    }

    func testMalformedInputIsAnError() {
        // no value
        XCTAssertThrowsError(try ProtoReader.fields([0x08])) { XCTAssertEqual(($0 as? ProtoError)?.offset, 1) }
        XCTAssertThrowsError(try ProtoReader.fields([0x0a, 0x05, 0x41]))  // length past the end
        XCTAssertThrowsError(try ProtoReader.fields([0x08, 0x80]))  // truncated varint
        XCTAssertThrowsError(try ProtoReader.fields([0x0b]))  // group start: unsupported wire type 3
        XCTAssertThrowsError(try ProtoReader.fields([0x00, 0x01]))  // field number 0
        XCTAssertThrowsError(try ProtoReader.fields([0x08] + [UInt8](repeating: 0xff, count: 11)))  // varint > 10 bytes
    }
}

/// CRIU's messages with rpc.proto's field numbers.
final class CriuMessageTests: XCTestCase {
    func testDumpRequestEncoding() throws {
        var o = CriuOptions()
        o.imagesDirFd = 5
        o.pid = 1234
        o.leaveRunning = true
        o.logFile = "dump.log"
        o.root = "/rootfs"
        o.manageCgroupsMode = .soft
        o.externalMounts = [("/data", "/data")]
        o.external = ["net[4026531840]:extRootNetNS"]
        o.freezeCgroup = "/sys/fs/cgroup/freezer/c1"
        o.orphanPtsMaster = true
        o.configFile = "/etc/criu/runc.conf"
        let req = CriuRequest(type: .dump, options: o).encoded()
        let top = try ProtoReader.fields(req)
        XCTAssertEqual(top.map(\.field), [1, 2])
        XCTAssertEqual(top[0].value.uint64, 1)  // DUMP
        let opts = try ProtoReader.fields(top[1].value.data ?? [])
        func values(_ n: Int) -> [ProtoValue] { opts.filter { $0.field == n }.map(\.value) }
        XCTAssertEqual(values(1).first?.int32, 5)  // images_dir_fd
        XCTAssertEqual(values(2).first?.int32, 1234)  // pid
        XCTAssertEqual(values(3).first?.bool, true)  // leave_running
        XCTAssertEqual(values(9).first?.int32, 4)  // log_level
        XCTAssertEqual(values(10).first?.string, "dump.log")  // log_file
        XCTAssertEqual(values(13).first?.string, "/rootfs")  // root
        XCTAssertEqual(values(34).first?.uint64, 3)  // manage_cgroups_mode SOFT
        XCTAssertEqual(values(37).first?.string, "net[4026531840]:extRootNetNS")  // external
        XCTAssertEqual(values(44).first?.string, "/sys/fs/cgroup/freezer/c1")  // freeze_cgroup
        XCTAssertEqual(values(50).first?.bool, true)  // orphan_pts_master
        XCTAssertEqual(values(51).first?.string, "/etc/criu/runc.conf")  // config_file
        XCTAssertTrue(values(5).isEmpty, "false bools are left out")
        let mnt = try ProtoReader.fields(values(23).first?.data ?? [])  // ext_mnt {key 1, val 2}
        XCTAssertEqual(mnt.map { $0.value.string }, ["/data", "/data"])
    }

    func testRestoreOptionsRepeatedMessages() throws {
        var o = CriuOptions()
        o.imagesDirFd = 3
        o.restoreSibling = true
        o.inheritFds = [("pipe:[123]", 1), ("extRootNetNS", 4)]
        o.cgroupRoots = [("memory", "/swiftlet/c1"), (nil, "/swiftlet/c1")]
        o.joinNamespaces = [("ipc", "/proc/1/ns/ipc")]
        var w = ProtoWriter()
        o.encode(into: &w)
        let f = try ProtoReader.fields(w.bytes)
        XCTAssertEqual(f.first { $0.field == 26 }?.value.bool, true)  // rst_sibling
        let inherit = try f.filter { $0.field == 27 }.map { try ProtoReader.fields($0.value.data ?? []) }
        XCTAssertEqual(inherit.count, 2)
        XCTAssertEqual(inherit[0].first { $0.field == 1 }?.value.string, "pipe:[123]")
        XCTAssertEqual(inherit[1].first { $0.field == 2 }?.value.int32, 4)
        let roots = try f.filter { $0.field == 25 }.map { try ProtoReader.fields($0.value.data ?? []) }
        XCTAssertEqual(roots[0].map(\.field), [1, 2])
        XCTAssertEqual(roots[1].map(\.field), [2], "no ctrl for the cgroup2 line")
        let join = try ProtoReader.fields(f.first { $0.field == 39 }?.value.data ?? [])
        XCTAssertEqual(join.map { $0.value.string }, ["ipc", "/proc/1/ns/ipc"])
    }

    func testNotifyReplyAndFeatureCheck() {
        // criu_req {type: NOTIFY(6), notify_success: true}
        XCTAssertEqual(CriuRequest(type: .notify, notifySuccess: true).encoded(), [0x08, 0x06, 0x18, 0x01])
        // criu_req {type: FEATURE_CHECK(9), features {mem_track: true}}
        XCTAssertEqual(
            CriuRequest(type: .featureCheck, features: CriuFeatures(memTrack: true)).encoded(),
            [0x08, 0x09, 0x2a, 0x02, 0x08, 0x01])
    }

    func testResponseDecoding() throws {
        // What criu 4.1.1 answered to the feature check above on the build host.
        let features = try CriuResponse.decode([0x08, 0x09, 0x10, 0x01, 0x42, 0x06, 0x08, 0x00, 0x10, 0x00, 0x18, 0x00])
        XCTAssertEqual(features.requestType, .featureCheck)
        XCTAssertTrue(features.success)
        XCTAssertEqual(features.features, CriuFeatures(memTrack: false, lazyPages: false))

        // NOTIFY with criu_notify {script "post-restore", pid 42}
        var w = ProtoWriter()
        w.varint(1 << 3)
        w.varint(6)
        w.bool(2, true)
        w.message(5) {
            $0.string(1, "post-restore")
            $0.int32(2, 42)
        }
        let notify = try CriuResponse.decode(w.bytes)
        XCTAssertEqual(notify.requestType, .notify)
        XCTAssertEqual(notify.notifyScript, "post-restore")
        XCTAssertEqual(notify.notifyPid, 42)

        // failed RESTORE with cr_errno, cr_errmsg and restore {pid}
        var f = ProtoWriter()
        f.varint(1 << 3)
        f.varint(2)
        f.bool(2, false)
        f.message(4) { $0.int32(1, 777) }
        f.int32(7, 2)
        f.string(9, "boom")
        f.string(99, "an unknown field is ignored")
        let failed = try CriuResponse.decode(f.bytes)
        XCTAssertEqual(failed.requestType, .restore)
        XCTAssertFalse(failed.success)
        XCTAssertEqual(failed.restoredPid, 777)
        XCTAssertEqual(failed.errno, 2)
        XCTAssertEqual(failed.errorMessage, "boom")
    }

    func testResponseWithoutRequiredFieldsIsRejected() {
        XCTAssertThrowsError(try CriuResponse.decode([0x08, 0x01]))  // no success
        XCTAssertThrowsError(try CriuResponse.decode([]))
    }

    func testCgroupModes() {
        XCTAssertEqual(CriuCgroupMode.parse("")?.rawValue, 6)
        XCTAssertEqual(CriuCgroupMode.parse("soft")?.rawValue, 3)
        XCTAssertEqual(CriuCgroupMode.parse("full")?.rawValue, 4)
        XCTAssertEqual(CriuCgroupMode.parse("strict")?.rawValue, 5)
        XCTAssertEqual(CriuCgroupMode.parse("ignore")?.rawValue, 0)
        XCTAssertNil(CriuCgroupMode.parse("props"))
    }

    func testLogQuoting() throws {
        let path = NSTemporaryDirectory() + "/criu-log-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "(00.1) ok\n(00.2) about to fail\n(00.3) Error (x.c:1): first\n(00.4) fine\n(00.5) Error (y.c:2): last\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(
            criuLogErrors(path),
            [
                "(00.2) about to fail", "(00.3) Error (x.c:1): first",
                "(00.4) fine", "(00.5) Error (y.c:2): last",
            ])
        XCTAssertEqual(criuLogErrors(path + ".missing"), [])
    }
}
