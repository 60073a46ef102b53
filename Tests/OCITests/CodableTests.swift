import XCTest

@testable import OCI

/// A minimal valid config, as JSON text, with `patch` applied to its object form.
func configJSON(_ patch: (inout [String: Any]) -> Void = { _ in }) -> [UInt8] {
    var object: [String: Any] = [
        "ociVersion": "1.2.0",
        "root": ["path": "rootfs"],
        "process": ["user": ["uid": 0, "gid": 0], "args": ["sh"], "cwd": "/"],
        "linux": ["namespaces": [["type": "pid"], ["type": "mount"]]],
    ]
    patch(&object)
    // JSONSerialization keeps the test independent from the encoder under test.
    return Array((try? JSONSerialization.data(withJSONObject: object)) ?? Data())
}

final class DecodingTests: XCTestCase {
    private func decodeError<T: Decodable>(
        _ type: T.Type, _ text: String,
        file: StaticString = #filePath, line: UInt = #line
    ) -> String {
        do {
            let value = try decodeJSON(type, from: Array(text.utf8))
            XCTFail("decoded \(value)", file: file, line: line)
            return ""
        } catch {
            return error.description
        }
    }

    func testRealisticContainerdConfig() throws {
        let spec = try decodeJSON(Spec.self, from: Array(containerdConfig.utf8))
        XCTAssertEqual(spec.ociVersion, "1.1.0")
        XCTAssertEqual(spec.hostname, "pod-été")
        let process = try XCTUnwrap(spec.process)
        XCTAssertEqual(process.user.uid, 65534)
        XCTAssertEqual(process.user.umask, 18)
        XCTAssertEqual(process.user.additionalGids, [65534, 10, UInt32.max])
        XCTAssertEqual(process.rlimits?[1], Rlimit(type: "RLIMIT_CORE", hard: .max, soft: .max))
        XCTAssertEqual(process.oomScoreAdj, -998)
        XCTAssertEqual(process.capabilities?.inheritable, nil)
        XCTAssertEqual(spec.mounts?.count, 7)
        XCTAssertEqual(spec.mounts?[0].options, ["nosuid", "noexec", "nodev"])
        XCTAssertEqual(spec.hooks?.createRuntime?.first?.timeout, 30)
        XCTAssertEqual(spec.hooks?.poststop?.first?.path, "/bin/true")
        XCTAssertEqual(spec.annotations?["io.kubernetes.cri.sandbox-id"], "abc")
        let linux = try XCTUnwrap(spec.linux)
        XCTAssertNil(linux.uidMappings)
        XCTAssertEqual(linux.namespaces?.map(\.type), [.pid, .ipc, .uts, .mount, .network])
        XCTAssertEqual(linux.namespaces?[4].path, "/var/run/netns/cni-1234")
        XCTAssertEqual(linux.sysctl?["net.ipv4.ping_group_range"], "0 2147483647")
        XCTAssertEqual(linux.resources?.memory?.swap, -1)
        XCTAssertEqual(linux.resources?.cpu?.quota, -1)
        XCTAssertEqual(linux.resources?.pids?.limit, 4096)
        XCTAssertEqual(
            linux.resources?.devices?[1], DeviceCgroup(allow: true, type: "c", major: 10, minor: 229, access: "rw"))
        XCTAssertEqual(linux.resources?.unified?["io.weight"], "default 100")
        XCTAssertEqual(linux.seccomp?.syscalls?[1].args?[0].value, 4_294_967_295)
        XCTAssertEqual(linux.devices?[0].fileMode, 438)
        XCTAssertEqual(linux.intelRdt?.closID, "guaranteed_group")
        XCTAssertNoThrow(try spec.validate())

        // Re-encoding and decoding again gives the same spec.
        let again = try decodeJSON(Spec.self, from: Array(encodeJSON(spec, pretty: true).utf8))
        XCTAssertEqual(again, spec)
    }

    func testUnknownFieldsIgnoredAndNullIsNil() throws {
        let spec = try decodeJSON(
            Spec.self,
            from: configJSON {
                $0["futureField"] = ["a": [1, 2, 3]]
                $0["hostname"] = NSNull()
                $0["root"] = ["path": "r", "extra": true]
            })
        XCTAssertNil(spec.hostname)
        XCTAssertEqual(spec.root, Root(path: "r"))
    }

    func testTypeMismatchErrorsNameThePath() {
        XCTAssertEqual(decodeError(Spec.self, #"{"ociVersion":"1","root":[]}"#), "root: expected object, got array")
        XCTAssertEqual(decodeError(Spec.self, "[]"), "expected object, got array")
        XCTAssertEqual(decodeError(Spec.self, #"{"ociVersion":1}"#), "ociVersion: expected string, got number 1")
        XCTAssertEqual(
            decodeError(Process.self, #"{"user":{"uid":"x","gid":0},"cwd":"/"}"#),
            #"user.uid: expected unsigned integer, got string "x""#)
        XCTAssertEqual(
            decodeError(Spec.self, #"{"ociVersion":"1","process":{"user":{"uid":"x","gid":0},"cwd":"/"}}"#),
            #"process.user.uid: expected unsigned integer, got string "x""#)
        XCTAssertEqual(
            decodeError(
                Spec.self, #"{"ociVersion":"1","process":{"user":{"uid":0,"gid":0},"cwd":"/","terminal":"yes"}}"#),
            #"process.terminal: expected boolean, got string "yes""#)
        XCTAssertEqual(
            decodeError(Spec.self, #"{"ociVersion":"1","process":{"user":{"uid":0,"gid":0},"cwd":"/","args":"sh"}}"#),
            #"process.args: expected array, got string "sh""#)
        XCTAssertEqual(
            decodeError(
                Spec.self, #"{"ociVersion":"1","process":{"user":{"uid":0,"gid":0},"cwd":"/","args":["sh",null]}}"#),
            "process.args[1]: expected string, got null")
        XCTAssertEqual(
            decodeError(Spec.self, #"{"ociVersion":"1","annotations":{"io.x/y":1}}"#),
            #"annotations["io.x/y"]: expected string, got number 1"#)
        XCTAssertEqual(
            decodeError(Spec.self, #"{"ociVersion":"1","linux":{"sysctl":{"a":true}}}"#),
            "linux.sysctl.a: expected string, got boolean true")
        XCTAssertEqual(
            decodeError(Spec.self, #"{"ociVersion":"1","linux":{"namespaces":{}}}"#),
            "linux.namespaces: expected array, got object")
        let long = String(repeating: "y", count: 100)
        XCTAssertEqual(
            decodeError(UInt32.self, "\"\(long)\""),
            "expected unsigned integer, got string \"\(String(repeating: "y", count: 64))…\"")
    }

    func testMissingRequiredFields() {
        XCTAssertEqual(
            decodeError(Spec.self, #"{"ociVersion":"1","process":{"user":{"uid":0,"gid":0}}}"#),
            "process.cwd: required field missing")
        XCTAssertEqual(decodeError(Spec.self, "{}"), "ociVersion: required field missing")
        XCTAssertEqual(
            decodeError(
                Spec.self,
                #"{"ociVersion":"1","process":{"rlimits":[{"type":"RLIMIT_CPU","hard":1}],"user":{"uid":0,"gid":0},"cwd":"/"}}"#
            ),
            "process.rlimits[0].soft: required field missing")
    }

    func testIntegerRanges() {
        func ok<T: Decodable & Equatable>(
            _ type: T.Type, _ text: String, _ expected: T,
            file: StaticString = #filePath, line: UInt = #line
        ) {
            XCTAssertEqual(try decodeJSON(type, from: Array(text.utf8)), expected, file: file, line: line)
        }
        ok(UInt64.self, "18446744073709551615", .max)
        ok(Int64.self, "-9223372036854775808", .min)
        ok(Int64.self, "9223372036854775807", .max)
        ok(UInt32.self, "4294967295", .max)
        ok(Int32.self, "-2147483648", .min)
        ok(UInt16.self, "65535", .max)
        ok(Int.self, "-0", 0)
        ok(UInt8.self, "-0", 0)
        ok(Double.self, "1.5e3", 1500)
        ok(Double.self, "-0.25", -0.25)
        ok(Float.self, "2", 2)

        XCTAssertEqual(
            decodeError(Spec.self, #"{"ociVersion":"1","process":{"user":{"uid":99999999999,"gid":0},"cwd":"/"}}"#),
            "process.user.uid: value 99999999999 out of range for UInt32")
        XCTAssertEqual(
            decodeError(UInt64.self, "18446744073709551616"), "value 18446744073709551616 out of range for UInt64")
        XCTAssertEqual(decodeError(UInt64.self, "-1"), "value -1 out of range for UInt64")
        XCTAssertEqual(
            decodeError(Int64.self, "-9223372036854775809"), "value -9223372036854775809 out of range for Int64")
        XCTAssertEqual(
            decodeError(Int64.self, "9223372036854775808"), "value 9223372036854775808 out of range for Int64")
        XCTAssertEqual(decodeError(Int32.self, "2147483648"), "value 2147483648 out of range for Int32")
        XCTAssertEqual(decodeError(UInt16.self, "65536"), "value 65536 out of range for UInt16")
        XCTAssertEqual(
            decodeError(Int.self, "123456789012345678901234567890"),
            "value 123456789012345678901234567890 out of range for Int")
        XCTAssertEqual(decodeError(Int.self, "1.5"), "expected integer, got number 1.5")
        XCTAssertEqual(decodeError(UInt32.self, "1e3"), "expected unsigned integer, got number 1e3")
        XCTAssertEqual(decodeError(Int.self, "true"), "expected integer, got boolean true")
        XCTAssertEqual(decodeError(Double.self, "1e400"), "value 1e400 out of range for Double")
        XCTAssertEqual(decodeError(Double.self, "\"1\""), #"expected number, got string "1""#)
    }

    func testEnumErrors() {
        let spec = #"{"ociVersion":"1","linux":{"namespaces":[{"type":"pid"},{"type":"uts"},{"type":"foo"}]}}"#
        XCTAssertEqual(decodeError(Spec.self, spec), #"linux.namespaces[2].type: unknown namespace "foo""#)
        XCTAssertEqual(
            decodeError(Spec.self, #"{"ociVersion":"1","linux":{"namespaces":[{"type":3}]}}"#),
            "linux.namespaces[0].type: expected string, got number 3")
        XCTAssertEqual(
            decodeError(Spec.self, #"{"ociVersion":"1","linux":{"namespaces":[{"path":"/x"}]}}"#),
            "linux.namespaces[0].type: required field missing")

        enum Color: String, Codable { case red }
        struct Paint: Codable { var colors: [Color] }
        XCTAssertEqual(decodeError(Paint.self, #"{"colors":["red","blue"]}"#), #"colors[1]: invalid value "blue""#)
    }

    func testSyntaxErrorsPassThrough() {
        XCTAssertEqual(
            decodeError(Spec.self, "{\n\"ociVersion\": \"1\",\n}"),
            "invalid character '}' looking for beginning of object key string at line 3, column 1")
    }

    func testOCIErrorDescription() {
        XCTAssertEqual(OCIError(path: "a.b", message: "bad").description, "a.b: bad")
        XCTAssertEqual(OCIError(path: "", message: "bad").description, "bad")
    }

    func testDictionariesAndState() throws {
        let state = State(
            id: "c1", status: "running", pid: 42, bundle: "/b",
            annotations: ["z": "1", "a": "2", "m.n": "3"])
        let text = encodeJSON(state)
        XCTAssertEqual(
            text,
            #"{"ociVersion":"1.3.0","id":"c1","pid":42,"status":"running","bundle":"/b","annotations":{"a":"2","m.n":"3","z":"1"}}"#
        )
        XCTAssertEqual(try decodeJSON(State.self, from: Array(text.utf8)), state)
        XCTAssertEqual(encodeJSON([String: Int]()), "{}")
        XCTAssertEqual(
            encodeJSON(["b": [1], "a": [2, 3]], pretty: true),
            "{\n  \"a\": [\n    2,\n    3\n  ],\n  \"b\": [\n    1\n  ]\n}")
    }
}

final class EncodingTests: XCTestCase {
    func testOmitsNilAndKeepsDeclarationOrder() {
        var process = Process(args: ["sh", "-c", "echo \"hi\""], cwd: "/work")
        process.noNewPrivileges = false
        XCTAssertEqual(
            encodeJSON(process),
            #"{"user":{"uid":0,"gid":0},"args":["sh","-c","echo \"hi\""],"cwd":"/work","noNewPrivileges":false}"#)
        XCTAssertEqual(
            encodeJSON(Root(path: "rootfs", readonly: true), pretty: true),
            "{\n  \"path\": \"rootfs\",\n  \"readonly\": true\n}")
    }

    func testScalarsAndCollections() {
        XCTAssertEqual(encodeJSON(UInt64.max), "18446744073709551615")
        XCTAssertEqual(encodeJSON(Int64.min), "-9223372036854775808")
        XCTAssertEqual(encodeJSON(["a\u{1}<>&"]), #"["a\u0001<>&"]"#)
        XCTAssertEqual(encodeJSON([Int?.none, 1]), "[null,1]")
        XCTAssertEqual(encodeJSON(true), "true")
        XCTAssertEqual(encodeJSON(1.5), "1.5")
        XCTAssertEqual(encodeJSON(2.0), "2")
        XCTAssertEqual(encodeJSON(Double.nan), "null")
        XCTAssertEqual(encodeJSON([[String]]()), "[]")
        XCTAssertEqual(encodeJSONValue(["k": 1]), .object(["k": .number("1")]))
    }

    func testBigNumbersRoundTrip() throws {
        let r = Rlimit(type: "RLIMIT_CORE", hard: .max, soft: .max - 1)
        let text = encodeJSON(r)
        XCTAssertEqual(text, #"{"type":"RLIMIT_CORE","hard":18446744073709551615,"soft":18446744073709551614}"#)
        XCTAssertEqual(try decodeJSON(Rlimit.self, from: Array(text.utf8)), r)
    }

    func testCustomEncodableThatThrowsIsBestEffort() {
        struct Bad: Encodable {
            struct Oops: Error {}
            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: NameKey.self)
                try c.encode(1, forKey: NameKey("a"))
                throw Oops()
            }
        }
        XCTAssertEqual(encodeJSON(Bad()), #"{"a":1}"#)
    }
}
