import TestSupport
import XCTest

@testable import OCI

/// Random mutations of a valid config must never crash the parser, decoder or validator: each either
/// succeeds or throws an OCIError. Deterministic (seeded), bounded.
final class FuzzTests: XCTestCase {
    func testMutatedConfigsNeverCrash() {
        let original = Array(containerdConfig.utf8)
        let interesting: [UInt8] =
            Array("{}[]\",:\\-0123456789eE.tfnu \n".utf8) + [0x00, 0x1F, 0x7F, 0x80, 0xC3, 0xE2, 0xF0, 0xFF]
        var rng = SeededRandom(seed: 0x5EED)
        var parsed = 0
        var decoded = 0
        for _ in 0..<2000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: bytes[at] = interesting.randomElement(using: &rng) ?? 0
                case 1: bytes[at] = UInt8.random(in: 0...255, using: &rng)
                case 2: bytes.remove(at: at)
                default: bytes.insert(interesting.randomElement(using: &rng) ?? 0, at: at)
                }
                if bytes.isEmpty { bytes = [0x20] }
            }
            if let value = try? JSONValue.parse(bytes) {
                parsed += 1
                // Whatever parses must re-serialize to something that parses to the same value.
                XCTAssertEqual(try? JSONValue.parse(value.serializedBytes()), value)
            }
            if let spec = try? decodeJSON(Spec.self, from: bytes) {
                decoded += 1
                _ = try? spec.validate()
                _ = encodeJSON(spec, pretty: true)
            }
            // Truncations are the commonest real-world corruption.
            let cut = Int.random(in: 0..<original.count, using: &rng)
            XCTAssertThrowsError(try decodeJSON(Spec.self, from: Array(original[..<cut])))
        }
        XCTAssertGreaterThan(parsed, 0)
        XCTAssertGreaterThan(decoded, 0)
    }
}
