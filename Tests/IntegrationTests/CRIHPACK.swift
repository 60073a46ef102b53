// HPACK (RFC 7541) for the test-only CRI client (CRIClient.swift): the encoder writes every header as a
// literal without indexing (section 6.2.2, new name, no Huffman), so it never touches a dynamic table;
// the decoder reads whatever a gRPC server sends: indexed fields, literals with and without indexing,
// dynamic table size updates, and Huffman-coded strings (Appendix B). Written from the RFC.

enum HPACKError: Error, CustomStringConvertible {
    case malformed(String)
    var description: String {
        if case .malformed(let m) = self { return "HPACK: \(m)" }
        return "HPACK"
    }
}

enum HPACK {
    /// Section 5.1: an integer with an N-bit prefix; `flags` fills the bits above the prefix.
    static func appendInteger(_ value: Int, prefixBits n: Int, flags: UInt8, to out: inout [UInt8]) {
        let max = (1 << n) - 1
        if value < max {
            out.append(flags | UInt8(value))
            return
        }
        out.append(flags | UInt8(max))
        var rest = value - max
        while rest >= 128 {
            out.append(UInt8(rest & 0x7f) | 0x80)
            rest >>= 7
        }
        out.append(UInt8(rest))
    }

    /// Section 6.2.2 with a literal name (first byte 0000 0000), both strings raw (H = 0).
    static func encode(_ headers: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (name, value) in headers {
            out.append(0)
            for s in [name, value] {
                let bytes = Array(s.utf8)
                appendInteger(bytes.count, prefixBits: 7, flags: 0, to: &out)
                out.append(contentsOf: bytes)
            }
        }
        return out
    }

    /// Appendix A: the static table (index 1...61).
    static let staticTable: [(String, String)] = [
        (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"), (":path", "/index.html"),
        (":scheme", "http"), (":scheme", "https"), (":status", "200"), (":status", "204"), (":status", "206"),
        (":status", "304"), (":status", "400"), (":status", "404"), (":status", "500"), ("accept-charset", ""),
        ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""), ("accept", ""),
        ("access-control-allow-origin", ""), ("age", ""), ("allow", ""), ("authorization", ""),
        ("cache-control", ""), ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""),
        ("content-length", ""), ("content-location", ""), ("content-range", ""), ("content-type", ""),
        ("cookie", ""), ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
        ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
        ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""), ("max-forwards", ""),
        ("proxy-authenticate", ""), ("proxy-authorization", ""), ("range", ""), ("referer", ""), ("refresh", ""),
        ("retry-after", ""), ("server", ""), ("set-cookie", ""), ("strict-transport-security", ""),
        ("transfer-encoding", ""), ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
    ]

    /// Appendix B, the length in bits of each symbol's code (0...255, then EOS as 256). The code is
    /// canonical: codes of one length are consecutive in symbol order, and each length starts at
    /// (last code of the previous length + 1) shifted left, so the lengths alone rebuild the table
    /// (HPACKTests checks the result against the RFC's hex codes and its Appendix C examples).
    static let huffmanLengths: [UInt8] = [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,  // 0-15
        28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,  // 16-31
        6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,  //           ' ' - '/'
        5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,  //               '0' - '?'
        13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,  //                 '@' - 'O'
        7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,  //              'P' - '_'
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,  //                 '`' - 'o'
        6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,  //             'p' - 127
        20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,  // 128-143
        24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,  // 144-159
        22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,  // 160-175
        21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,  // 176-191
        26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,  // 192-207
        19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,  // 208-223
        20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,  // 224-239
        26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,  // 240-255
        30,  //                                                              EOS
    ]

    /// (code, length) for each symbol, rebuilt canonically from `huffmanLengths`.
    static let huffmanCodes: [(code: UInt32, length: Int)] = {
        let order = (0..<huffmanLengths.count).sorted {
            (huffmanLengths[$0], $0) < (huffmanLengths[$1], $1)
        }
        var codes = [(code: UInt32, length: Int)](repeating: (0, 0), count: huffmanLengths.count)
        var code: UInt32 = 0
        var length = Int(huffmanLengths[order[0]])
        for (i, sym) in order.enumerated() {
            let l = Int(huffmanLengths[sym])
            if i > 0 { code = (code + 1) << UInt32(l - length) }
            length = l
            codes[sym] = (code, l)
        }
        return codes
    }()

    /// (length << 32 | code) -> symbol, for a bit-by-bit decoder.
    static let huffmanLookup: [UInt64: Int] = {
        var map: [UInt64: Int] = [:]
        for (sym, c) in huffmanCodes.enumerated() { map[UInt64(c.length) << 32 | UInt64(c.code)] = sym }
        return map
    }()

    /// Section 5.2: a Huffman-coded string. Padding must be at most 7 bits, all ones; EOS is an error.
    static func huffmanDecode(_ bytes: ArraySlice<UInt8>) throws(HPACKError) -> [UInt8] {
        var out: [UInt8] = []
        var code: UInt32 = 0
        var length = 0
        for byte in bytes {
            for bit in (0..<8).reversed() {
                code = code << 1 | UInt32((byte >> UInt8(bit)) & 1)
                length += 1
                if let sym = huffmanLookup[UInt64(length) << 32 | UInt64(code)] {
                    guard sym != 256 else { throw .malformed("EOS in a Huffman string") }
                    out.append(UInt8(sym))
                    code = 0
                    length = 0
                } else if length > 30 {
                    throw .malformed("no Huffman code matches")
                }
            }
        }
        guard length <= 7, code == (UInt32(1) << UInt32(length)) - 1 else {
            throw .malformed("bad Huffman padding (\(length) bits)")
        }
        return out
    }

    /// Huffman-encodes a string (only the tests use this, to check the table round-trips).
    static func huffmanEncode(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var acc: UInt64 = 0
        var bits = 0
        for b in bytes {
            let c = huffmanCodes[Int(b)]
            acc = acc << UInt64(c.length) | UInt64(c.code)
            bits += c.length
            while bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt64(bits)))
            }
        }
        if bits > 0 { out.append(UInt8(truncatingIfNeeded: acc << UInt64(8 - bits)) | UInt8(0xff >> bits)) }
        return out
    }
}

/// Decodes header blocks of one connection (the dynamic table lives across blocks, section 2.3.2).
struct HPACKDecoder {
    private(set) var dynamicTable: [(String, String)] = []  // newest first
    private(set) var maxSize = 4096  // SETTINGS_HEADER_TABLE_SIZE default; we never announce another
    private var size: Int { dynamicTable.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count + 32 } }

    mutating func decode(_ block: [UInt8]) throws(HPACKError) -> [(String, String)] {
        var headers: [(String, String)] = []
        var i = 0
        while i < block.count {
            let b = block[i]
            if b & 0x80 != 0 {  // 6.1 indexed
                headers.append(try entry(try integer(block, &i, prefixBits: 7)))
            } else if b & 0x40 != 0 {  // 6.2.1 literal with incremental indexing
                let field = try literal(block, &i, prefixBits: 6)
                headers.append(field)
                insert(field)
            } else if b & 0x20 != 0 {  // 6.3 dynamic table size update
                let newSize = try integer(block, &i, prefixBits: 5)
                guard newSize <= 4096 else { throw .malformed("table size update \(newSize) above 4096") }
                maxSize = newSize
                evict()
            } else {  // 6.2.2 without indexing, 6.2.3 never indexed
                headers.append(try literal(block, &i, prefixBits: 4))
            }
        }
        return headers
    }

    private func entry(_ index: Int) throws(HPACKError) -> (String, String) {
        if index >= 1 && index <= HPACK.staticTable.count { return HPACK.staticTable[index - 1] }
        let d = index - HPACK.staticTable.count - 1
        guard d >= 0 && d < dynamicTable.count else { throw .malformed("index \(index) out of range") }
        return dynamicTable[d]
    }

    private mutating func insert(_ field: (String, String)) {
        dynamicTable.insert(field, at: 0)
        evict()
    }

    private mutating func evict() {
        while size > maxSize, !dynamicTable.isEmpty { dynamicTable.removeLast() }
    }

    private func literal(_ block: [UInt8], _ i: inout Int, prefixBits: Int) throws(HPACKError) -> (String, String) {
        let index = try integer(block, &i, prefixBits: prefixBits)
        let name = index == 0 ? try string(block, &i) : try entry(index).0
        return (name, try string(block, &i))
    }

    private func integer(_ block: [UInt8], _ i: inout Int, prefixBits n: Int) throws(HPACKError) -> Int {
        guard i < block.count else { throw .malformed("truncated integer") }
        let max = (1 << n) - 1
        var value = Int(block[i]) & max
        i += 1
        guard value == max else { return value }
        var shift = 0
        while true {
            guard i < block.count else { throw .malformed("truncated integer") }
            guard shift <= 28 else { throw .malformed("integer too large") }
            let b = block[i]
            i += 1
            value += Int(b & 0x7f) << shift
            shift += 7
            if b & 0x80 == 0 { return value }
        }
    }

    private func string(_ block: [UInt8], _ i: inout Int) throws(HPACKError) -> String {
        guard i < block.count else { throw .malformed("truncated string") }
        let huffman = block[i] & 0x80 != 0
        let length = try integer(block, &i, prefixBits: 7)
        guard length <= block.count - i else { throw .malformed("string length \(length) past the end") }
        let raw = block[i..<(i + length)]
        i += length
        return String(decoding: huffman ? try HPACK.huffmanDecode(raw) : Array(raw), as: UTF8.self)
    }
}
