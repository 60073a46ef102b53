import XCTest

@testable import Argv

final class HelpTests: XCTestCase {
    private var appHelp: String { helpText(app: testApp) }
    private var createHelp: String { helpText(command: testApp.commands[0], app: testApp) }

    func testAppHelpPaths() throws {
        for argv in [
            ["--help"], ["-h"], ["-help"], ["--help=true"], [], ["help"], ["h"], ["--root", "/x"],
            ["--help", "create", "id"], ["--help", "--version"],
        ] {
            XCTAssertEqual(try output(argv), appHelp, "\(argv)")
        }
    }

    func testHelpFalseIsNotHelp() throws {
        XCTAssertEqual(try invoke(["--help=false", "state", "id"]).command.name, "state")
        XCTAssertEqual(try invoke(["create", "--help=false", "id"]).options.values, [:])
    }

    func testVersion() throws {
        XCTAssertEqual(try output(["--version"]), "tester version 1.0\nspec: 9.9\n")
        XCTAssertEqual(try output(["-v"]), "tester version 1.0\nspec: 9.9\n")
        XCTAssertEqual(versionText(app: testApp), "tester version 1.0\nspec: 9.9\n")
        // Verbs have no -v.
        XCTAssertEqual(failure(["state", "-v", "id"]).message, "flag provided but not defined: -v")
    }

    func testCommandHelpPaths() throws {
        for argv in [
            ["create", "--help"], ["create", "-h"], ["create", "id", "--help"], ["help", "create"],
            ["h", "create"], ["help", "create", "more"], ["--debug", "create", "-h"],
        ] {
            XCTAssertEqual(try output(argv), createHelp, "\(argv)")
        }
        // Help wins over the argument count, a parse error wins over help.
        XCTAssertEqual(try output(["kill", "-h", "a", "b", "c"]), helpText(command: testApp.commands[2], app: testApp))
        XCTAssertEqual(failure(["create", "--help", "--foo"]).message, "flag provided but not defined: -foo")
        // With stopAtFirstPositional, --help after the container id belongs to the command.
        XCTAssertEqual(try invoke(["exec", "id", "--help"]).options.positionals, ["id", "--help"])
        XCTAssertTrue(try output(["exec", "--help"]).hasPrefix("NAME:\n   tester exec - run a process\n"))
    }

    func testHelpOfTheHelpVerb() throws {
        let text = try output(["help", "help"])
        XCTAssertEqual(try output(["help", "--help"]), text)
        XCTAssertEqual(try output(["h", "h"]), text)
        XCTAssertTrue(text.hasPrefix("NAME:\n   tester help - "), text)
        XCTAssertTrue(text.contains("USAGE:\n   tester help [command]\n"), text)
    }

    func testUnknownVerbAndTopic() {
        for argv in [["foo"], ["foo", "-h"], ["help", "foo"], ["--debug", "foo", "bar"], ["h", "--", "foo"]] {
            let error = failure(argv)
            XCTAssertEqual(error.message, "No help topic for 'foo'", "\(argv)")
            XCTAssertEqual(error.exitCode, 3, "\(argv)")
            XCTAssertNil(error.usageText)
            XCTAssertNotNil(error.globals)
        }
        XCTAssertEqual(failure(["help", "--foo"]).message, "flag provided but not defined: -foo")
    }

    func testAppHelpLayout() {
        let text = appHelp
        XCTAssertTrue(
            text.hasPrefix(
                "NAME:\n   tester - a test runtime\n\nUSAGE:\n   tester [global options] command [command options] "
                    + "[arguments...]\n\nVERSION:\n   1.0\n   spec: 9.9\n\nDESCRIPTION:\n   Longer words about\n   "
                    + "the test runtime.\n\nCOMMANDS:\n"
            ), text)
        for command in testApp.commands {
            XCTAssertTrue(text.contains("\n   \(command.name)  "), command.name)
        }
        XCTAssertTrue(text.contains("\n   help, h "), text)
        XCTAssertTrue(text.contains("GLOBAL OPTIONS:\n   --debug "), text)
        XCTAssertTrue(text.contains("--log value "), text)
        XCTAssertTrue(text.contains(#"log format (default: "text")"#), text)
        XCTAssertTrue(text.contains(#"state directory (default: "/run/tester")"#), text)
        XCTAssertTrue(text.contains("--help, -h "), text)
        XCTAssertTrue(text.hasSuffix("print the version\n"), text)
        XCTAssertFalse(text.contains(" \n"), "no trailing spaces")
    }

    func testCommandHelpLayout() {
        let text = createHelp
        XCTAssertTrue(
            text.hasPrefix(
                "NAME:\n   tester create - create a container\n\nUSAGE:\n   tester create [command options] "
                    + "<container-id>\n\nDESCRIPTION:\n   Creates one.\n   Second line.\n\nOPTIONS:\n"
            ), text)
        XCTAssertTrue(text.contains("   --bundle value, -b value  bundle directory\n"), text)
        XCTAssertTrue(text.contains("   --no-pivot                skip pivot_root\n"), text)
        XCTAssertTrue(text.contains("   --detach, -d              detach\n"), text)
        XCTAssertTrue(text.contains("   --preserve-fds value      extra fds (default: 0)\n"), text)
        XCTAssertFalse(text.contains("secret"), "hidden options are not listed")
        XCTAssertFalse(text.contains("--help"), "like urfave, a verb's help does not list --help")
    }

    func testOptionsAlignInOneColumn() {
        let lines = createHelp.split(separator: "\n").drop { $0 != "OPTIONS:" }.dropFirst()
        // Where the usage starts: after the first run of two or more spaces past the indent.
        let columns = Set(
            lines.map { line -> Int? in
                guard let gap = line.dropFirst(3).firstRange(of: "  ") else { return nil }
                let usage = line[gap.lowerBound...].drop { $0 == " " }
                return line.distance(from: line.startIndex, to: usage.startIndex)
            })
        XCTAssertEqual(columns.count, 1, "\(lines)")
    }

    func testCommandWithoutOptions() {
        let text = helpText(command: testApp.commands[4], app: testApp)
        XCTAssertEqual(text, "NAME:\n   tester state - show state\n\nUSAGE:\n   tester state <container-id>\n")
        let bare = CommandSpec(name: "bare", usage: "nothing")
        XCTAssertTrue(helpText(command: bare, app: testApp).contains("USAGE:\n   tester bare [arguments...]\n"))
    }

    func testSliceDurationAndMultilineUsage() {
        let app = AppSpec(
            name: "a", usage: "u", version: "1", globalOptions: [],
            commands: [
                CommandSpec(
                    name: "c", usage: "u",
                    options: [
                        .stringSlice("env", "e", usage: "variables"),
                        .duration("interval", usage: "period", default: "5s"),
                        .int("fd", usage: "descriptor", default: -1),
                        .string("r", usage: "first line\nsecond line"),
                    ])
            ])
        let text = helpText(command: app.commands[0], app: app)
        XCTAssertTrue(text.contains("   --env value, -e value  variables\n"), text)
        XCTAssertTrue(text.contains("   --interval value       period (default: 5s)\n"), text)
        XCTAssertTrue(text.contains("   --fd value             descriptor (default: -1)\n"), text)
        XCTAssertTrue(
            text.contains("   -r value               first line\n                          second line\n"), text)
    }
}
