// The two halves of runc's option parsing: urfave/cli v1's argument reordering, then Go's
// flag.FlagSet.Parse, followed by urfave's check that an option was not given under two names.

/// Moves option-looking words ahead of the others, as urfave/cli v1.22.1 does for commands without
/// SkipArgReorder. It does not know which options are bools: the word after any option without "="
/// that does not start with "-" travels with it. So `create --no-pivot id --bundle b` keeps `id`
/// right after `--no-pivot`, Go's parser stops there, and `--bundle b` ends up positional, as in runc.
/// Everything from "--" on stays in place, after the moved words.
func reorderArguments(_ arguments: [String]) -> [String] {
    var options: [String] = []
    var others: [String] = []
    var expectingValue = false
    for (index, word) in arguments.enumerated() {
        if word == "--" {
            others.append(contentsOf: arguments[index...])
            break
        }
        if expectingValue && !word.hasPrefix("-") {
            expectingValue = false
            options.append(word)
            continue
        }
        expectingValue = false
        if word != "-" && word.hasPrefix("-") {
            options.append(word)
            expectingValue = !word.utf8.contains(UInt8(ascii: "="))
        } else {
            others.append(word)
        }
    }
    return options + others
}

struct FlagParse {
    var parsed: ParsedOptions
    /// Go's parse error, if parsing stopped on one.
    var failure: String?
    /// urfave's "Cannot use two forms of the same flag" error, if any.
    var conflict: String?
}

/// Go's `flag.Parse` alone (no urfave reordering, help or verbs), for programs with Go's plain flag
/// syntax such as a containerd shim: the options up to the first non-option word, then positionals.
/// Throws Go's error wording ("flag provided but not defined: -x", "flag needs an argument: -x").
/// Go has no aliases: an option given under two of its names is no error (the last value counts).
public func parseGoFlags(_ arguments: [String], options: [OptionSpec]) throws(ArgvError) -> ParsedOptions {
    let result = parseFlags(arguments, options: options)
    if let failure = result.failure { throw ArgvError(message: failure) }
    return result.parsed
}

private let dash = UInt8(ascii: "-")
private let equals = UInt8(ascii: "=")

/// Go's FlagSet.Parse over `arguments`: options up to the first non-option word ("-" counts as one)
/// or up to and including "--"; the rest are positionals.
func parseFlags(_ arguments: [String], options: [OptionSpec]) -> FlagParse {
    var parsed = ParsedOptions()
    for option in options {
        if let value = option.defaultValue {
            parsed.defaults[option.name] = value
        }
    }
    var seenNames: Set<String> = []
    var failure: String?
    var index = 0
    scan: while index < arguments.count {
        let name: String
        let inlineValue: String?
        switch splitOptionWord(arguments[index]) {
        case .end(let consumed):
            if consumed { index += 1 }  // "--" ends the options and is dropped
            break scan
        case .bad(let text):
            failure = text
            break scan
        case .option(let n, let v):
            (name, inlineValue) = (n, v)
        }
        index += 1
        guard let option = options.first(where: { $0.names.contains(name) }) else {
            failure = "flag provided but not defined: -\(name)"
            break scan
        }
        switch flagValue(option, name: name, inlineValue: inlineValue, arguments, &index) {
        case .failure(let error):
            failure = error.text
            break scan
        case .success(let value):
            if option.repeatable {
                parsed.values[option.name, default: []].append(value)
            } else {
                parsed.values[option.name] = [value]
            }
        }
        seenNames.insert(name)
    }
    parsed.positionals = failure == nil ? Array(arguments[index...]) : []
    return FlagParse(parsed: parsed, failure: failure, conflict: nameConflict(options, seenNames))
}

/// What one word is to Go's parser: the end of the options ("--", consumed, or a non-option),
/// bad syntax, or an option name with its inline `=value`.
private enum OptionWord {
    case end(consumed: Bool)
    case bad(String)
    case option(name: String, inlineValue: String?)
}

private func splitOptionWord(_ word: String) -> OptionWord {
    let bytes = Array(word.utf8)
    if bytes.count < 2 || bytes[0] != dash { return .end(consumed: false) }
    var nameStart = 1
    if bytes[1] == dash {
        if bytes.count == 2 { return .end(consumed: true) }
        nameStart = 2
    }
    if nameStart == bytes.count || bytes[nameStart] == dash || bytes[nameStart] == equals {
        return .bad("bad flag syntax: \(word)")
    }
    guard let equalsAt = bytes[(nameStart + 1)...].firstIndex(of: equals) else {
        return .option(name: String(decoding: bytes[nameStart...], as: UTF8.self), inlineValue: nil)
    }
    return .option(
        name: String(decoding: bytes[nameStart..<equalsAt], as: UTF8.self),
        inlineValue: String(decoding: bytes[(equalsAt + 1)...], as: UTF8.self))
}

private struct FlagFailure: Error {
    let text: String
}

/// The value of `option` (given as `name`): a bool's inline value or "true"; else the inline value
/// or the next word (advancing `index`), checked against the option's type. Go's wording on failure.
private func flagValue(
    _ option: OptionSpec, name: String, inlineValue: String?, _ arguments: [String],
    _ index: inout Int
) -> Result<String, FlagFailure> {
    if option.kind == .bool {
        guard let text = inlineValue else { return .success("true") }
        guard let flag = goParseBool(text) else {
            return .failure(FlagFailure(text: "invalid boolean value \(goQuote(text)) for -\(name): parse error"))
        }
        return .success(flag ? "true" : "false")
    }
    let value: String
    if let text = inlineValue {
        value = text
    } else if index < arguments.count {
        value = arguments[index]
        index += 1
    } else {
        return .failure(FlagFailure(text: "flag needs an argument: -\(name)"))
    }
    if let reason = valueError(value, kind: option.kind) {
        return .failure(FlagFailure(text: invalidValueMessage(value, flag: name, reason: reason)))
    }
    return .success(value)
}

/// Go's reason text when a value does not parse for its flag type, or nil when it does.
private func valueError(_ value: String, kind: OptionKind) -> String? {
    switch kind {
    case .bool, .string, .stringSlice:
        return nil
    case .int:
        if case .failure(let error) = parseGoInt(value, base: 0, bitSize: Int.bitWidth) {
            return error.flagReason
        }
        return nil
    case .int64Slice:
        // urfave's Int64Slice returns strconv's own error, unlike Go's built-in int flags.
        if case .failure(let error) = parseGoInt(value, base: 10, bitSize: 64) {
            return error.description
        }
        return nil
    case .duration:
        return goParseDuration(value) == nil ? "parse error" : nil
    }
}

/// urfave's normalizeFlags: an option used under two of its names is an error, naming the later
/// name of the declaration first.
private func nameConflict(_ options: [OptionSpec], _ seenNames: Set<String>) -> String? {
    for option in options where option.names.count > 1 {
        var first: String?
        for name in option.names where seenNames.contains(name) {
            if let earlier = first {
                return "Cannot use two forms of the same flag: \(name) \(earlier)"
            }
            first = name
        }
    }
    return nil
}
