// libFuzzer entry for the config parser, decoder and validator (Scripts/fuzz.sh compiles it with
// Sources/OCI/*.swift as one module). Any input: parse, decode as a Spec, validate, re-encode.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let value = try? JSONValue.parse(bytes) { _ = value.serializedBytes() }
    if let spec = try? decodeJSON(Spec.self, from: bytes) {
        _ = try? spec.validate()
        _ = encodeJSON(spec, pretty: true)
    }
    return 0
}
