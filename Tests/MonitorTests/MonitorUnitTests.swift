import OCI
import TestSupport
import XCTest

@testable import MonitorCore

final class OptionParsingTests: XCTestCase {
    func testPodmanCommandLine() throws {
        let o = try parseMonitorOptions([
            "--api-version", "1", "-c", "cid", "-u", "uuid", "-r", "/usr/bin/crun", "-b", "/b",
            "-p", "/b/pidfile", "-n", "name", "--exit-dir", "/e", "--full-attach",
            "--runtime-arg", "--root=/run/x", "-l", "k8s-file:/b/ctr.log", "--log-level", "debug",
            "--syslog", "-i", "--conmon-pidfile=/b/conmon.pid", "--exit-command", "/usr/bin/podman",
            "--exit-command-arg", "--root", "--exit-command-arg", "/x", "--runtime-opt",
            "--preserve-fds", "--runtime-opt", "2", "-T5",
        ])
        XCTAssertTrue(o.apiVersion)
        XCTAssertEqual(o.cid, "cid")
        XCTAssertEqual(o.cuuid, "uuid")
        XCTAssertEqual(o.runtime, "/usr/bin/crun")
        XCTAssertEqual(o.runtimeArgs, ["--root=/run/x"])
        XCTAssertEqual(o.runtimeOpts, ["--preserve-fds", "2"])
        XCTAssertEqual(o.conmonPidFile, "/b/conmon.pid")
        XCTAssertEqual(o.exitCommandArgs, ["--root", "/x"])
        XCTAssertEqual(o.logPaths, ["k8s-file:/b/ctr.log"])
        XCTAssertEqual(o.timeout, 5)
        XCTAssertTrue(o.stdin && o.fullAttach && o.syslog)
        XCTAssertNoThrow(try validate(o))
    }

    func testErrorsNameTheOption() {
        func message(_ args: [String]) -> String {
            do {
                _ = try parseMonitorOptions(args)
                return ""
            } catch { return error.message }
        }
        XCTAssertTrue(message(["--nope"]).contains("--nope"))
        XCTAssertTrue(message(["-x"]).contains("-x"))
        XCTAssertTrue(message(["--cid"]).contains("--cid"))
        XCTAssertTrue(message(["--exit-delay", "soon"]).contains("--exit-delay"))
        XCTAssertTrue(message(["--terminal=yes"]).contains("--terminal"))
        func invalid(_ args: [String]) -> String {
            do {
                try validate(try parseMonitorOptions(args))
                return ""
            } catch { return error.message }
        }
        XCTAssertTrue(invalid(["-u", "u", "-r", "/r"]).contains("--cid"))
        XCTAssertTrue(invalid(["-c", "c", "-r", "/r"]).contains("--cuuid"))
        XCTAssertTrue(invalid(["-c", "c", "-u", "u"]).contains("--runtime"))
        XCTAssertTrue(invalid(["-c", "c", "-r", "/r", "-e"]).contains("--exec-process-spec"))
        XCTAssertTrue(invalid(["-c", "c", "-u", "u", "-r", "/r", "--exec-attach"]).contains("exec"))
        XCTAssertTrue(
            invalid(["-c", "c", "-u", "u", "-r", "/r", "-l", "journald:"]).contains(
                "Container ID must be longer than 12 characters"))
        XCTAssertEqual(invalid(["-c", "c", "-u", "u", "-r", "/r", "stray", "words"]), "")
        XCTAssertTrue(
            invalid(["-c", "c", "-u", "u", "-r", "/r", "--control-idle-timeout", "0"]).contains(
                "--control-idle-timeout"))
        XCTAssertEqual(try parseMonitorOptions(["--control-idle-timeout", "5"]).controlIdleTimeout, 5)
        XCTAssertEqual(try parseMonitorOptions([]).controlIdleTimeout, 30)
    }
}

final class K8sFormatTests: XCTestCase {
    func testFullAndPartialLines() {
        let out = K8sFormat.records(ArraySlice("a\nbb\nccc".utf8), stream: .stdout, timestamp: "T")
        XCTAssertEqual(
            out.map { String(decoding: $0, as: UTF8.self) }, ["T stdout F a\n", "T stdout F bb\n", "T stdout P ccc\n"])
        let err = K8sFormat.records(ArraySlice("x\n".utf8), stream: .stderr, timestamp: "T")
        XCTAssertEqual(err, [Array("T stderr F x\n".utf8)])
        XCTAssertEqual(K8sFormat.records(ArraySlice([]), stream: .stdout, timestamp: "T"), [])
    }

    func testTimestampHasNanosecondsAndNumericOffset() {
        setenv("TZ", "UTC", 1)
        tzset()
        XCTAssertEqual(K8sFormat.timestamp(seconds: 0, nanoseconds: 5), "1970-01-01T00:00:00.000000005+00:00")
        setenv("TZ", "EST5", 1)
        tzset()
        XCTAssertEqual(K8sFormat.timestamp(seconds: 0, nanoseconds: 123_456_789), "1969-12-31T19:00:00.123456789-05:00")
        unsetenv("TZ")
        tzset()
    }
}

final class GRPCHealthTests: XCTestCase {
    func testRequestFrames() {
        let req = GRPCHealthClient().request(authority: "127.0.0.1:50051", service: "svc")
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        XCTAssertEqual(Array(req.prefix(preface.count)), preface)
        var i = preface.count
        var frames: [(UInt8, UInt8, [UInt8])] = []
        while i + 9 <= req.count {
            let len = Int(req[i]) << 16 | Int(req[i + 1]) << 8 | Int(req[i + 2])
            frames.append((req[i + 3], req[i + 4], Array(req[(i + 9)..<(i + 9 + len)])))
            i += 9 + len
        }
        XCTAssertEqual(i, req.count)
        XCTAssertEqual(frames.map { $0.0 }, [4, 1, 0])  // SETTINGS, HEADERS, DATA
        XCTAssertEqual(frames[2].1, 1, "DATA ends the stream")
        XCTAssertEqual(frames[2].2, [0, 0, 0, 0, 5, 0x0a, 3] + Array("svc".utf8))
        XCTAssertTrue(String(decoding: frames[1].2, as: UTF8.self).contains("/grpc.health.v1.Health/Check"))
    }

    func testResponses() {
        func frame(_ t: UInt8, _ f: UInt8, _ p: [UInt8]) -> [UInt8] {
            [0, 0, UInt8(p.count), t, f, 0, 0, 0, t == 4 ? 0 : 1] + p
        }
        var c = GRPCHealthClient()
        XCTAssertEqual(c.parse(frame(4, 0, [])), .needMore)
        XCTAssertNotNil(c.pendingAck())
        XCTAssertNil(c.pendingAck(), "one ack")
        XCTAssertEqual(c.parse(frame(4, 0, []) + frame(1, 4, [0x88]) + frame(0, 0, [0, 0, 0, 0, 2, 8, 1])), .serving)
        XCTAssertEqual(c.parse(frame(0, 0, [0, 0, 0, 0, 2, 8, 2])), .notServing("status NOT_SERVING"))
        XCTAssertEqual(
            c.parse(frame(1, 5, [0x88])),
            .notServing("call ended without a response (service unknown or health service missing)"))
        XCTAssertEqual(c.parse(frame(0, 0, [0, 0])), .notServing("short gRPC message"))
        XCTAssertEqual(c.parse([0, 0, 9, 0, 0]), .needMore, "incomplete frame header")
        XCTAssertEqual(
            GRPCHealthClient.hpackInteger(1337, prefixBits: 5, firstByte: 0), [31, 154, 10], "RFC 7541 C.1.2")
    }
}

final class ProbeSpecTests: XCTestCase {
    func spec(_ json: String) -> Result<ProbeSpec, MonitorFailure> {
        guard case .object(let o)? = try? JSONValue.parse(json) else {
            return .failure(MonitorFailure("bad test json"))
        }
        do { return .success(try ProbeSpec(o)) } catch { return .failure(error) }
    }

    func testDefaultsFollowKubernetes() throws {
        let s = try spec(#"{"name":"p","tcpSocket":{"port":80}}"#).get()
        XCTAssertEqual(
            [s.periodSeconds, s.timeoutSeconds, s.successThreshold, s.failureThreshold, s.initialDelaySeconds],
            [10, 1, 1, 3, 0])
        guard case .tcp(let host, 80) = s.action else { return XCTFail("\(s.action)") }
        XCTAssertEqual(host, "127.0.0.1")
    }

    func testInvalidSpecsNameTheField() {
        let cases: [(String, String)] = [
            (#"{"tcpSocket":{"port":80}}"#, "params.name"),
            (#"{"name":"p"}"#, "exactly one of"),
            (#"{"name":"p","tcpSocket":{"port":80},"exec":{"command":["x"]}}"#, "exactly one of"),
            (#"{"name":"p","exec":{"command":[]}}"#, "params.exec.command"),
            (#"{"name":"p","exec":{"command":"ls"}}"#, "params.command"),
            (#"{"name":"p","tcpSocket":{}}"#, "params.tcpSocket.port"),
            (#"{"name":"p","tcpSocket":{"port":"80"}}"#, "params.tcpSocket.port"),
            (#"{"name":"p","httpGet":{"port":80,"path":"no-slash"}}"#, "params.httpGet.path"),
            (
                #"{"name":"p","httpGet":{"port":80,"httpHeaders":[{"name":"a\r\nb","value":"x"}]}}"#,
                "params.httpGet.httpHeaders"
            ),
            (#"{"name":"p","httpGet":{"port":80,"expectedStatus":700}}"#, "params.httpGet.expectedStatus"),
            (#"{"name":"p","grpc":{"port":1,"host":"::zz"}}"#, "params.grpc.host"),
            (#"{"name":"p","tcpSocket":{"port":80},"periodSeconds":0}"#, "params.periodSeconds"),
            (#"{"name":"p","tcpSocket":{"port":80},"failureThreshold":1.5}"#, "params.failureThreshold"),
        ]
        for (json, field) in cases {
            switch spec(json) {
            case .success: XCTFail("accepted \(json)")
            case .failure(let e): XCTAssertTrue(e.message.contains(field), "\(json): \(e.message)")
            }
        }
    }
}

/// Randomised inputs for the monitor's parsers (control API requests, probe specs, ctl lines, the
/// command line): each either parses or throws a clear error; none may trap. Seeded, so a failure
/// reproduces.
final class MonitorParserFuzzTests: XCTestCase {
    static let seeds = [
        #"{"name":"p","exec":{"command":["true"]},"periodSeconds":1}"#,
        #"{"name":"h","httpGet":{"port":8080,"path":"/x","httpHeaders":[{"name":"A","value":"b"}],"expectedStatus":204}}"#,
        #"{"name":"g","grpc":{"port":50051,"service":"s","host":"::1"},"timeoutSeconds":3}"#,
        #"{"name":"t","tcpSocket":{"port":1,"host":"10.0.0.1"},"failureThreshold":1000}"#,
        #"{"args":["sh","-c","echo"],"env":["A=B"],"cwd":"/","user":"0:0","timeout":5}"#,
        #"{"archive":"/tmp/x.tar","tcpEstablished":true}"#,
    ]

    func mutate(_ s: [UInt8], _ rng: inout SeededRandom) -> [UInt8] {
        var b = s
        for _ in 0..<Int.random(in: 1...6, using: &rng) {
            guard !b.isEmpty else { break }
            let i = Int.random(in: 0..<b.count, using: &rng)
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: b[i] = UInt8.random(in: 0...255, using: &rng)
            case 1: b.remove(at: i)
            case 2: b.insert(Array("{}[]\",:-0123456789e.\\ntrue".utf8).randomElement(using: &rng) ?? 0, at: i)
            case 3: b = Array(b[..<i])
            case 4: b.insert(contentsOf: Array(b[i...].prefix(16)), at: i)
            default: b.insert(contentsOf: Array("99999999999999999999999".utf8), at: i)
            }
        }
        return b
    }

    func testRequestsNeverTrap() {
        var rng = SeededRandom(seed: 0x5157_1E7)
        var parsed = 0
        var rejected = 0
        for round in 0..<20_000 {
            let seed = Array(Self.seeds[round % Self.seeds.count].utf8)
            let bytes = mutate(seed, &rng)
            guard case .object(let o)? = try? JSONValue.parse(bytes, maxDepth: 32) else {
                rejected += 1
                continue
            }
            parsed += 1
            _ = try? ProbeSpec(o)
            _ = try? ExecRequest(o)
            _ = try? CheckpointArchive.Request(o)
        }
        XCTAssertGreaterThan(parsed, 1000, "the mutations still reach the spec decoders")
        XCTAssertGreaterThan(rejected, 1000)
    }

    func testCommandLinesNeverTrap() {
        var rng = SeededRandom(seed: 42)
        let words = [
            "--api-version", "1", "-c", "x", "-u", "--runtime", "-r", "/bin/true", "-T", "-5", "--log-size-max",
            "-l", "k8s-file:", "-e", "--exec-attach", "--timeout=", "-T99999999999999999999", "-", "--", "-0", "=", "",
        ]
        for _ in 0..<20_000 {
            let argv = (0..<Int.random(in: 0...8, using: &rng)).map { _ in words.randomElement(using: &rng) ?? "" }
            if let o = try? parseMonitorOptions(argv) { _ = try? validate(o) }
        }
    }

    func testGRPCFramesNeverTrap() {
        var rng = SeededRandom(seed: 7)
        for _ in 0..<20_000 {
            var c = GRPCHealthClient()
            let bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = c.parse(bytes)
            _ = GRPCHealthClient.healthStatus(bytes)
        }
    }
}

/// rootfs-diff.tar members as the restore check sees them (RootfsDiff, issue 13.6).
final class RootfsDiffTests: XCTestCase {
    func tarOf(_ format: String, _ script: String) throws -> String {
        let dir = try makeTempDir(prefix: "swiftlet-tar.")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let r = runProgram(
            "/bin/sh", ["-c", "cd \(dir) && mkdir w && cd w && \(script) && tar --format=\(format) -cf ../t.tar *"])
        XCTAssertEqual(r.status, 0, r.stderr)
        return dir + "/t.tar"
    }

    func testLongNamesAndLinksInGnuAndPaxArchives() throws {
        let long = String(repeating: "d", count: 120) + "/" + String(repeating: "f", count: 120)
        for format in ["gnu", "pax"] {
            let script =
                "mkdir \(String(repeating: "d", count: 120)) && echo x > \(long) && ln -s \(long) s && ln \(long) h"
            let members = try RootfsDiff.members(try tarOf(format, script))
            XCTAssertTrue(
                members.contains(TarMember(name: long, type: UInt8(ascii: "0"), link: "")), "\(format): \(members)")
            XCTAssertTrue(
                members.contains(TarMember(name: "s", type: UInt8(ascii: "2"), link: long)), "\(format): \(members)")
            XCTAssertTrue(
                members.contains(TarMember(name: "h", type: UInt8(ascii: "1"), link: long)), "\(format): \(members)")
        }
        // ustar splits a long name into prefix and name.
        let dirs = String(repeating: "a", count: 60) + "/" + String(repeating: "b", count: 60)
        let members = try RootfsDiff.members(
            try tarOf("ustar", "mkdir -p \(dirs) && echo x > \(dirs)/f && ln -s target s"))
        XCTAssertTrue(members.contains(TarMember(name: dirs + "/f", type: UInt8(ascii: "0"), link: "")), "\(members)")
        XCTAssertTrue(members.contains(TarMember(name: "s", type: UInt8(ascii: "2"), link: "target")), "\(members)")
    }

    func testMemberRules() throws {
        let root = try makeTempDir(prefix: "swiftlet-rootfs.")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: root) }
        XCTAssertEqual(symlink("/etc", root + "/evil"), 0)
        func check(_ m: [TarMember]) -> String? {
            do {
                try RootfsDiff.check(m, rootfs: root)
                return nil
            } catch { return error.message }
        }
        let file = UInt8(ascii: "0")
        let dir = UInt8(ascii: "5")
        let sym = UInt8(ascii: "2")
        let hard = UInt8(ascii: "1")
        XCTAssertNil(
            check([TarMember(name: "./", type: dir, link: ""), TarMember(name: "./a/b", type: file, link: "")]))
        XCTAssertNil(
            check([TarMember(name: "evil", type: file, link: "")]), "a file replaces a symlink at its own path")
        XCTAssertNil(check([TarMember(name: "s", type: sym, link: "/etc")]), "a symlink member alone is fine")
        XCTAssertNotNil(check([TarMember(name: "/etc/passwd", type: file, link: "")])?.range(of: "absolute"))
        XCTAssertNotNil(check([TarMember(name: "a/../../x", type: file, link: "")])?.range(of: "\"..\""))
        XCTAssertNotNil(
            check([TarMember(name: "evil/shadow", type: file, link: "")])?.range(of: "symlink /evil of the rootfs"))
        XCTAssertNotNil(check([TarMember(name: "evil", type: dir, link: "")])?.range(of: "symlink /evil of the rootfs"))
        XCTAssertNotNil(
            check([TarMember(name: "s", type: sym, link: "x"), TarMember(name: "s/f", type: file, link: "")])?.range(
                of: "symlink member"))
        XCTAssertNotNil(check([TarMember(name: "h", type: hard, link: "evil/shadow")])?.range(of: "hard link target"))
        XCTAssertNotNil(check([TarMember(name: "h", type: hard, link: "../x")])?.range(of: "hard link target"))
    }
}

final class JournalFormatTests: XCTestCase {
    let id = JournalIdentity(containerID: "0123456789abcdef", name: "web", tag: nil)

    func testPlainAndBinarySafeFields() {
        var out: [UInt8] = []
        JournalFormat.appendField(&out, "A", Array("x".utf8))
        JournalFormat.appendField(&out, "B", Array("1\n2".utf8))
        XCTAssertEqual(out, Array("A=x\nB\n".utf8) + [3, 0, 0, 0, 0, 0, 0, 0] + Array("1\n2\n".utf8))
    }

    func testEntryFieldsInConmonsOrder() {
        let e = JournalFormat.entry(
            message: Array("hi".utf8), stream: .stderr, partial: true,
            identity: JournalIdentity(containerID: "0123456789abcdef", name: "web", tag: "t"))
        XCTAssertEqual(
            String(decoding: e, as: UTF8.self),
            "MESSAGE=hi\nCONTAINER_ID_FULL=0123456789abcdef\nPRIORITY=3\nCONTAINER_ID=0123456789ab\n"
                + "CONTAINER_TAG=t\nCONTAINER_NAME=web\nSYSLOG_IDENTIFIER=t\nCONTAINER_PARTIAL_MESSAGE=true\n")
        let plain = JournalFormat.entry(
            message: Array("hi".utf8), stream: .stdout, partial: false,
            identity: JournalIdentity(containerID: "0123456789abcdef", name: nil, tag: nil))
        XCTAssertEqual(
            String(decoding: plain, as: UTF8.self),
            "MESSAGE=hi\nCONTAINER_ID_FULL=0123456789abcdef\nPRIORITY=6\nCONTAINER_ID=0123456789ab\n"
                + "SYSLOG_IDENTIFIER=0123456789ab\n")
    }

    func testSyslogIdentifierPrecedence() {
        XCTAssertEqual(JournalIdentity(containerID: "0123456789abcdef", name: "n", tag: "t").syslogIdentifier, "t")
        XCTAssertEqual(JournalIdentity(containerID: "0123456789abcdef", name: "n", tag: nil).syslogIdentifier, "n")
        XCTAssertEqual(
            JournalIdentity(containerID: "0123456789abcdef", name: nil, tag: nil).syslogIdentifier, "0123456789ab")
    }

    func testSplitterHoldsPiecesPerStreamAndFlushes() {
        var s = JournalLineSplitter()
        XCTAssertTrue(s.messages(ArraySlice("ab".utf8), stream: .stdout).isEmpty)
        XCTAssertTrue(s.messages(ArraySlice("err".utf8), stream: .stderr).isEmpty)
        let m = s.messages(ArraySlice("c\nd\ne".utf8), stream: .stdout)
        XCTAssertEqual(m.map { String(decoding: $0.0, as: UTF8.self) }, ["abc\n", "d\n"])
        XCTAssertEqual(m.map(\.1), [false, false])
        XCTAssertEqual(s.flush(.stdout).map { String(decoding: $0, as: UTF8.self) }, "e")
        XCTAssertNil(s.flush(.stdout))
        XCTAssertEqual(s.flush(.stderr).map { String(decoding: $0, as: UTF8.self) }, "err")
    }

    func testSplitterSendsWhatItCannotHoldAsPartial() {
        var s = JournalLineSplitter()
        XCTAssertTrue(s.messages(ArraySlice(repeating: 120, count: 5000), stream: .stdout).isEmpty)
        let m = s.messages(ArraySlice(repeating: 120, count: 5000), stream: .stdout)
        XCTAssertEqual(m.count, 1)
        XCTAssertEqual(m.first?.0.count, 10000)
        XCTAssertEqual(m.first?.1, true)
        XCTAssertNil(s.flush(.stdout))
        let full = s.messages(ArraySlice(repeating: 120, count: 8192), stream: .stdout)
        XCTAssertEqual(full.map(\.1), [true], "a full 8 KiB read without a newline cannot be held")
    }

    func testOptionsForJournald() throws {
        let base = ["-c", "0123456789abcdef", "-u", "u", "-r", "/rt"]
        XCTAssertNoThrow(
            try validate(parseMonitorOptions(base + ["-l", "k8s-file:/x", "-l", "journald:", "--log-tag", "t"])))
        XCTAssertThrowsError(try validate(parseMonitorOptions(base + ["-l", "k8s-file:/x", "--log-tag", "t"])))
        XCTAssertThrowsError(
            try validate(parseMonitorOptions(["-c", "0123456789ab", "-u", "u", "-r", "/rt", "-l", "journald"]))
        ) {
            XCTAssertEqual(($0 as? MonitorFailure)?.message, "Container ID must be longer than 12 characters")
        }
    }

    func testNotifyRelayKeepsOnlyReadyAndWatchdog() {
        XCTAssertEqual(NotifyRelay.forwarded(ArraySlice("MAINPID=4\nREADY=1\nSTATUS=up".utf8)), "READY=1")
        XCTAssertEqual(NotifyRelay.forwarded(ArraySlice("WATCHDOG=1".utf8)), "WATCHDOG=1")
        XCTAssertNil(NotifyRelay.forwarded(ArraySlice("STATUS=starting".utf8)))
        XCTAssertNil(
            NotifyRelay.forwarded(ArraySlice([0] + Array("READY=1".utf8))), "searched up to the first NUL, like strstr")
    }
}
