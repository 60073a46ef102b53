// Help screens laid out like urfave/cli v1's templates: NAME, USAGE, VERSION, DESCRIPTION,
// COMMANDS, (GLOBAL) OPTIONS, sections indented by three spaces, two-column lists aligned.

/// The app's help (`swiftlet --help`, `swiftlet help`, `swiftlet` alone).
public func helpText(app: AppSpec) -> String {
    var text = "NAME:\n" + indented("\(app.name) - \(app.usage)") + "\n\n"
    text += "USAGE:\n   \(app.name) [global options] command [command options] [arguments...]\n"
    if !app.version.isEmpty {
        text += "\nVERSION:\n" + indented(app.version) + "\n"
    }
    if !app.description.isEmpty {
        text += "\nDESCRIPTION:\n" + indented(app.description) + "\n"
    }
    var commandRows = app.commands.map { ($0.name, $0.usage) }
    commandRows.append((helpCommand.names.joined(separator: ", "), helpCommand.usage))
    text += "\nCOMMANDS:\n" + columns(commandRows)
    let options = app.globalOptions + [helpOption, versionOption]
    text += "\nGLOBAL OPTIONS:\n" + columns(options.filter { !$0.hidden }.map(optionRow))
    return text
}

/// A verb's help (`swiftlet create --help`, `swiftlet help create`).
public func helpText(command: CommandSpec, app: AppSpec) -> String {
    let options = command.options.filter { !$0.hidden }
    var usageLine = "\(app.name) \(command.name)"
    if !options.isEmpty {
        usageLine += " [command options]"
    }
    usageLine += " " + (command.argsUsage.isEmpty ? "[arguments...]" : command.argsUsage)
    var text = "NAME:\n" + indented("\(app.name) \(command.name) - \(command.usage)") + "\n\n"
    text += "USAGE:\n" + indented(usageLine) + "\n"
    if !command.description.isEmpty {
        text += "\nDESCRIPTION:\n" + indented(command.description) + "\n"
    }
    if !options.isEmpty {
        text += "\nOPTIONS:\n" + columns(options.map(optionRow))
    }
    return text
}

/// The help of the built-in `help` verb (`swiftlet help help`).
func helpTextForHelpCommand(app: AppSpec) -> String {
    let name = "\(app.name) \(helpCommand.names[0])"
    return "NAME:\n   \(name) - \(helpCommand.usage)\n\nUSAGE:\n   \(name) \(helpCommand.argsUsage)\n"
}

/// One option as urfave lists it: "--bundle value, -b value" and the usage with its default.
private func optionRow(_ option: OptionSpec) -> (String, String) {
    let placeholder = option.takesValue ? " " + option.valueName : ""
    let names = option.names.map { name in
        (name.count == 1 ? "-" : "--") + name + placeholder
    }
    var usage = option.usage
    if let value = option.defaultValue {
        switch option.kind {
        case .string:
            if !value.isEmpty { usage += " (default: \(goQuote(value)))" }
        case .int, .duration:
            usage += " (default: \(value))"
        case .bool, .stringSlice, .int64Slice:
            break
        }
    }
    return (names.joined(separator: ", "), usage)
}

/// Two aligned columns, each line indented by three spaces, the second column two spaces after the
/// widest first cell (Go's tabwriter with padding 2). Later lines of a cell line up under it.
private func columns(_ rows: [(String, String)]) -> String {
    let width = rows.map { $0.0.unicodeScalars.count }.max() ?? 0
    let gap = String(repeating: " ", count: 3 + width + 2)
    var text = ""
    for (left, right) in rows {
        let padding = String(repeating: " ", count: width + 2 - left.unicodeScalars.count)
        let lines = right.split(separator: "\n", omittingEmptySubsequences: false)
        var line = "   " + left + padding + (lines.first.map(String.init) ?? "")
        for more in lines.dropFirst() {
            line += "\n" + (more.isEmpty ? "" : gap + more)
        }
        text += trimmingTrailingSpaces(line) + "\n"
    }
    return text
}

/// Every line indented by three spaces (empty lines stay empty).
private func indented(_ text: String) -> String {
    text.split(separator: "\n", omittingEmptySubsequences: false)
        .map { $0.isEmpty ? "" : "   " + $0 }
        .joined(separator: "\n")
}

private func trimmingTrailingSpaces(_ text: String) -> String {
    var result = Substring(text)
    while result.last == " " {
        result = result.dropLast()
    }
    return String(result)
}
