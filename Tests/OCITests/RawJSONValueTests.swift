import Foundation
import XCTest

@testable import OCI

/// A JSONValue inside a Codable type is copied as it is by OCI's codec (the state file keeps the
/// config that way), and refused clearly by other codecs.
final class RawJSONValueTests: XCTestCase {
    struct Holder: Codable, Equatable {
        var id: String
        var config: JSONValue
    }

    func testRoundTripKeepsUnknownFieldsOrderAndNumbers() throws {
        let text =
            #"{"id":"c1","config":{"zeta":1,"alpha":[true,null,"x"],"big":18446744073709551615,"unknownField":{"b":2,"a":1.50}}}"#
        let h = try decodeJSON(Holder.self, from: Array(text.utf8))
        XCTAssertEqual(h.id, "c1")
        guard case .object(let config) = h.config else { return XCTFail("config is not an object") }
        XCTAssertEqual(config.keys, ["zeta", "alpha", "big", "unknownField"])
        XCTAssertEqual(config["big"], .number("18446744073709551615"))
        XCTAssertEqual(encodeJSON(h), text)
    }

    func testPartOfTheRawValueDecodesOnDemand() throws {
        let h = try decodeJSON(
            Holder.self,
            from: Array(#"{"id":"c","config":{"process":{"cwd":"/","args":["sh"],"user":{"uid":0,"gid":0}}}}"#.utf8))
        guard case .object(let config) = h.config, let process = config["process"] else { return XCTFail("no process") }
        let p = try decodeJSON(Process.self, from: process)
        XCTAssertEqual(p.args, ["sh"])
    }

    func testOtherCodecsAreRefused() {
        let data = Data(#"{"id":"c","config":{}}"#.utf8)
        XCTAssertThrowsError(try JSONDecoder().decode(Holder.self, from: data)) { error in
            XCTAssertTrue("\(error)".contains("OCI.decodeJSON"), "\(error)")
        }
        XCTAssertThrowsError(try JSONEncoder().encode(Holder(id: "c", config: .null)))
    }
}
