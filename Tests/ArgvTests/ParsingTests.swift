import XCTest

@testable import Argv

final class ParsingTests: XCTestCase {
    // MARK: Option syntax

    func testOneOrTwoDashesWithSpaceOrEquals() throws {
        for form in [["-root", "/x"], ["--root", "/x"], ["-root=/x"], ["--root=/x"]] {
            let run = try invoke(form + ["state", "id"])
            XCTAssertEqual(run.globals.string("root"), "/x", "\(form)")
            XCTAssertTrue(run.globals.has("root"))
        }
    }

    func testDefaultsApplyOnlyWhenAbsent() throws {
        let run = try invoke(["state", "id"])
        XCTAssertEqual(run.globals.string("root"), "/run/tester")
        XCTAssertEqual(run.globals.string("log-format"), "text")
        XCTAssertNil(run.globals.string("log"), "no value and no default")
        XCTAssertFalse(run.globals.has("root"))
        XCTAssertNil(run.globals.string("no-such-option"))
        XCTAssertEqual(run.globals.values, [:])
        XCTAssertEqual(run.globals.positionals, [], "the verb and its words are not global positionals")
    }

    func testEqualsWithEmptyValueAndValueWithEquals() throws {
        let run = try invoke(["create", "--bundle=", "--pid-file=a=b", "id"])
        XCTAssertTrue(run.options.has("bundle"))
        XCTAssertEqual(run.options.string("bundle"), "")
        XCTAssertEqual(run.options.string("pid-file"), "a=b")
    }

    func testValueMayStartWithDash() throws {
        let run = try invoke(["create", "--bundle", "-weird", "id"])
        XCTAssertEqual(run.options.string("bundle"), "-weird")
        XCTAssertEqual(run.options.positionals, ["id"])
    }

    func testBoolForms() throws {
        let cases: [([String], Bool)] = [
            (["--debug"], true), (["-debug"], true), (["--debug=true"], true), (["--debug=false"], false),
            (["--debug=1"], true), (["--debug=0"], false), (["-debug=T"], true), (["--debug=FALSE"], false),
        ]
        for (flags, expected) in cases {
            let run = try invoke(flags + ["state", "id"])
            XCTAssertEqual(run.globals.bool("debug"), expected, "\(flags)")
            XCTAssertTrue(run.globals.has("debug"), "\(flags)")
        }
        XCTAssertFalse(try invoke(["state", "id"]).globals.bool("debug"))
    }

    func testBoolNeverTakesTheNextWord() throws {
        let run = try invoke(["create", "--no-pivot", "id"])
        XCTAssertTrue(run.options.bool("no-pivot"))
        XCTAssertEqual(run.options.positionals, ["id"])
        // "false" after a bool is a positional, as in Go.
        let kill = try invoke(["kill", "--all", "false", "id"])
        XCTAssertTrue(kill.options.bool("all"))
        XCTAssertEqual(kill.options.positionals, ["false", "id"])
    }

    func testInvalidBool() {
        let error = failure(["--debug=yes", "state", "id"])
        XCTAssertEqual(error.message, #"invalid boolean value "yes" for -debug: parse error"#)
        XCTAssertEqual(failure(["create", "-d=", "id"]).message, #"invalid boolean value "" for -d: parse error"#)
    }

    func testShortAliasesStoreUnderCanonicalName() throws {
        let create = try invoke(["create", "-b", "/b", "-d", "id"])
        XCTAssertEqual(create.options.string("bundle"), "/b")
        XCTAssertTrue(create.options.bool("detach"))
        XCTAssertEqual(Set(create.options.values.keys), ["bundle", "detach"])
        let exec = try invoke(["exec", "-t", "-u", "1:2", "-e", "A=1", "-g", "7", "id", "sh"])
        XCTAssertTrue(exec.options.bool("tty"))
        XCTAssertEqual(exec.options.string("user"), "1:2")
        XCTAssertEqual(exec.options.strings("env"), ["A=1"])
        XCTAssertEqual(try exec.options.int64s("additional-gids"), [7])
        XCTAssertTrue(try invoke(["kill", "-a", "id"]).options.bool("all"))
    }

    func testRepeatableAndLastValueWins() throws {
        let exec = try invoke(["exec", "--env", "A=1", "--env=B=2", "-g", "1", "-g=2", "id", "true"])
        XCTAssertEqual(exec.options.strings("env"), ["A=1", "B=2"])
        XCTAssertEqual(exec.options.string("env"), "B=2")
        XCTAssertEqual(try exec.options.int64s("additional-gids"), [1, 2])
        XCTAssertEqual(exec.options.strings("user"), [])
        let create = try invoke(["create", "-b", "one", "-b", "two", "id"])
        XCTAssertEqual(create.options.strings("bundle"), ["two"])
    }

    func testTwoFormsOfOneOptionIsAnError() {
        let error = failure(["create", "-b", "x", "--bundle", "y", "id"])
        XCTAssertEqual(error.message, "Cannot use two forms of the same flag: b bundle")
        XCTAssertEqual(error.commandName, "create")
        XCTAssertEqual(
            failure(["exec", "--env", "A", "-e", "B", "id"]).message,
            "Cannot use two forms of the same flag: e env")
        // At the app level urfave prints the bare message, then the help.
        let global = failure(["--help", "-h"])
        XCTAssertEqual(global.message, "Cannot use two forms of the same flag: h help")
        XCTAssertEqual(global.usageText?.hasPrefix("Cannot use two forms of the same flag: h help\nNAME:\n"), true)
    }

    // MARK: Errors in Go's words

    func testMissingValue() {
        XCTAssertEqual(failure(["create", "--bundle"]).message, "flag needs an argument: -bundle")
        XCTAssertEqual(failure(["create", "-b"]).message, "flag needs an argument: -b")
        let global = failure(["--root"])
        XCTAssertEqual(global.message, "flag needs an argument: -root")
        XCTAssertNil(global.commandName)
        XCTAssertEqual(global.exitCode, 1)
        XCTAssertEqual(global.usageText?.hasPrefix("Incorrect Usage. flag needs an argument: -root\n\nNAME:\n"), true)
    }

    func testUnknownOption() {
        let error = failure(["create", "--foo", "id"])
        XCTAssertEqual(error.message, "flag provided but not defined: -foo")
        XCTAssertEqual(error.description, error.message)
        XCTAssertEqual(error.commandName, "create")
        XCTAssertEqual(error.exitCode, 1)
        XCTAssertEqual(error.globals?.string("root"), "/run/tester", "globals parsed before the verb are kept")
        XCTAssertEqual(
            error.usageText?.hasPrefix(
                "Incorrect Usage: flag provided but not defined: -foo\n\nNAME:\n   tester create"),
            true)
        XCTAssertEqual(failure(["create", "-foo=bar", "id"]).message, "flag provided but not defined: -foo")
        let global = failure(["--foo", "create", "id"])
        XCTAssertEqual(global.message, "flag provided but not defined: -foo")
        XCTAssertNil(global.globals)
    }

    func testGlobalOptionsAfterTheVerbAreUnknown() {
        XCTAssertEqual(failure(["create", "--root", "/x", "id"]).message, "flag provided but not defined: -root")
    }

    func testBadSyntax() {
        XCTAssertEqual(failure(["create", "---x", "id"]).message, "bad flag syntax: ---x")
        XCTAssertEqual(failure(["create", "-=x", "id"]).message, "bad flag syntax: -=x")
        XCTAssertEqual(failure(["--=x"]).message, "bad flag syntax: --=x")
    }

    func testTypedValuesAreCheckedWhileParsing() {
        XCTAssertEqual(
            failure(["create", "--preserve-fds", "x", "id"]).message,
            #"invalid value "x" for flag -preserve-fds: parse error"#)
        XCTAssertEqual(
            failure(["create", "--preserve-fds=99999999999999999999", "id"]).message,
            #"invalid value "99999999999999999999" for flag -preserve-fds: value out of range"#)
        XCTAssertEqual(
            failure(["events", "--interval", "5", "id"]).message,
            #"invalid value "5" for flag -interval: parse error"#)
        XCTAssertEqual(
            failure(["exec", "-g", "x", "id"]).message,
            #"invalid value "x" for flag -g: strconv.ParseInt: parsing "x": invalid syntax"#)
    }

    // MARK: Reordering, stop at first positional, "--"

    func testOptionsAfterPositionalsAreReordered() throws {
        let run = try invoke(["create", "id", "--bundle", "/b", "--pid-file=/p", "-d"])
        XCTAssertEqual(run.options.string("bundle"), "/b")
        XCTAssertEqual(run.options.string("pid-file"), "/p")
        XCTAssertTrue(run.options.bool("detach"))
        XCTAssertEqual(run.options.positionals, ["id"])
    }

    func testReorderingKeepsTheWordAfterABoolLikeRunc() {
        // urfave moves "id" along with "--no-pivot", so Go stops there and "--bundle /b" stays positional.
        let error = failure(["create", "--no-pivot", "id", "--bundle", "/b"], programName: "/usr/bin/tester")
        XCTAssertEqual(error.message, #"/usr/bin/tester: "create" requires exactly 1 argument(s)"#)
        XCTAssertEqual(
            reorderArguments(["--no-pivot", "id", "--bundle", "/b"]), ["--no-pivot", "id", "--bundle", "/b"])
        XCTAssertEqual(
            reorderArguments(["id", "-x", "v", "--y=1", "z", "-", "--", "-w"]),
            ["-x", "v", "--y=1", "id", "z", "-", "--", "-w"])
    }

    func testStopAtFirstPositional() throws {
        let run = try invoke(["exec", "-t", "id", "sh", "-c", "echo hi", "--env", "X"])
        XCTAssertTrue(run.options.bool("tty"))
        XCTAssertEqual(run.options.positionals, ["id", "sh", "-c", "echo hi", "--env", "X"])
        XCTAssertEqual(run.options.strings("env"), [])
        let late = try invoke(["exec", "id", "--tty"])
        XCTAssertFalse(late.options.has("tty"))
        XCTAssertEqual(late.options.positionals, ["id", "--tty"])
    }

    func testDoubleDashEndsOptions() throws {
        XCTAssertEqual(try invoke(["create", "--", "--odd-id"]).options.positionals, ["--odd-id"])
        XCTAssertEqual(try invoke(["create", "-b", "/b", "--", "id"]).options.positionals, ["id"])
        XCTAssertEqual(try invoke(["exec", "--", "id", "sh"]).options.positionals, ["id", "sh"])
        // After a positional Go stops without consuming "--", so it stays a positional (as in runc).
        XCTAssertEqual(try invoke(["args", "a", "--", "-x", "v"]).options.positionals, ["a", "--", "-x", "v"])
        XCTAssertEqual(try invoke(["args", "a", "-x", "v", "--", "-x"]).options.positionals, ["a", "--", "-x"])
        XCTAssertEqual(try invoke(["--", "state", "id"]).command.name, "state")
    }

    func testLoneDashIsPositional() throws {
        let run = try invoke(["args", "-", "-x", "v"])
        XCTAssertEqual(run.options.positionals, ["-"])
        XCTAssertEqual(run.options.string("value"), "v")
    }

    func testGlobalsAndVerbOptionsTogether() throws {
        let run = try invoke([
            "--root", "/run/x", "--log", "/l.json", "--log-format", "json", "--debug",
            "create", "--bundle", "/b", "--preserve-fds", "2", "c1",
        ])
        XCTAssertEqual(run.command.name, "create")
        XCTAssertEqual(
            run.globals.values, ["root": ["/run/x"], "log": ["/l.json"], "log-format": ["json"], "debug": ["true"]])
        XCTAssertEqual(run.options.string("bundle"), "/b")
        XCTAssertEqual(try run.options.int("preserve-fds"), 2)
        XCTAssertEqual(run.options.positionals, ["c1"])
    }

    // MARK: Argument counts

    func testArgumentCounts() throws {
        let none = failure(["create"])
        XCTAssertEqual(none.message, #"tester: "create" requires exactly 1 argument(s)"#)
        XCTAssertEqual(none.commandName, "create")
        XCTAssertEqual(none.usageText?.hasPrefix("Incorrect Usage.\n\nNAME:\n   tester create"), true)
        XCTAssertEqual(failure(["create", "a", "b"]).message, #"tester: "create" requires exactly 1 argument(s)"#)
        XCTAssertEqual(failure(["kill"]).message, #"tester: "kill" requires a minimum of 1 argument(s)"#)
        XCTAssertEqual(
            failure(["kill", "a", "b", "c"]).message, #"tester: "kill" requires a maximum of 2 argument(s)"#)
        XCTAssertEqual(try invoke(["kill", "a", "KILL"]).options.positionals, ["a", "KILL"])
        XCTAssertEqual(failure(["exec"]).message, #"tester: "exec" requires a minimum of 1 argument(s)"#)
        XCTAssertEqual(try invoke(["args"]).options.positionals, [])
    }

    // MARK: Typed getters

    func testIntGetter() throws {
        XCTAssertEqual(try invoke(["create", "id"]).options.int("preserve-fds"), 0, "default")
        XCTAssertEqual(try invoke(["create", "--preserve-fds=0x10", "id"]).options.int("preserve-fds"), 16)
        XCTAssertEqual(try invoke(["create", "--preserve-fds", "-3", "id"]).options.int("preserve-fds"), -3)
        XCTAssertNil(try ParsedOptions().int("missing"))
        let bad = ParsedOptions(values: ["preserve-fds": ["abc"]])
        XCTAssertThrowsError(try bad.int("preserve-fds")) { error in
            XCTAssertEqual((error as? ArgvError)?.message, #"invalid value "abc" for flag -preserve-fds: parse error"#)
        }
    }

    func testInt64sGetter() {
        let bad = ParsedOptions(values: ["additional-gids": ["1", "2x"]])
        XCTAssertThrowsError(try bad.int64s("additional-gids")) { error in
            XCTAssertEqual(
                (error as? ArgvError)?.message,
                #"invalid value "2x" for flag -additional-gids: strconv.ParseInt: parsing "2x": invalid syntax"#)
        }
        XCTAssertEqual(try ParsedOptions().int64s("additional-gids"), [])
    }

    func testDurationGetter() throws {
        XCTAssertEqual(try invoke(["events", "id"]).options.duration("interval"), .seconds(5))
        XCTAssertEqual(try invoke(["events", "--interval", "1m30s", "id"]).options.duration("interval"), .seconds(90))
        XCTAssertEqual(
            try invoke(["events", "--interval=250ms", "id"]).options.duration("interval"), .milliseconds(250))
        let bad = ParsedOptions(values: ["interval": ["soon"]])
        XCTAssertThrowsError(try bad.duration("interval")) { error in
            XCTAssertEqual((error as? ArgvError)?.message, #"invalid value "soon" for flag -interval: parse error"#)
        }
    }

    func testBoolGetterOnOddValues() {
        XCTAssertFalse(ParsedOptions(values: ["x": ["maybe"]]).bool("x"))
        XCTAssertTrue(ParsedOptions(values: ["x": ["false", "t"]]).bool("x"))
    }
}
