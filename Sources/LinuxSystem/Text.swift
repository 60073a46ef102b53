/// The kernel's list format for CPUs and memory nodes (cpuset.cpus, set_mempolicy's nodes in the
/// runtime-spec, `Cpus_allowed_list`): `0-3,8,10-11` is [0, 1, 2, 3, 8, 10, 11].
/// nil when the text is not such a list (empty parts, reversed ranges, non-numbers).
public func parseNumberList(_ s: String) -> [Int]? {
    var out: [Int] = []
    for part in s.split(separator: ",", omittingEmptySubsequences: false) {
        let bounds = part.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard let low = Int(bounds[0]), low >= 0 else { return nil }
        let high = bounds.count == 2 ? Int(bounds[1]) : low
        guard let high, low <= high else { return nil }
        out.append(contentsOf: low...high)
    }
    return out
}

/// `s` without leading and trailing spaces, tabs, newlines and carriage returns (the one trim of the
/// code base: file contents, command output, config values).
public func trimmed<S: StringProtocol>(_ s: S) -> String {
    var scalars = Substring(s).unicodeScalars[...]
    while let f = scalars.first, f == " " || f == "\n" || f == "\t" || f == "\r" { scalars.removeFirst() }
    while let l = scalars.last, l == " " || l == "\n" || l == "\t" || l == "\r" { scalars.removeLast() }
    return String(String.UnicodeScalarView(scalars))
}
