import COpenSSL

/// A non-blocking TLS client over a connected socket, for https probes. Like the kubelet, it does
/// not verify the server's certificate (a probe checks liveness, not identity).
final class TLSClient {
    nonisolated(unsafe) private static let context: OpaquePointer? = {
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { return nil }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        return ctx
    }()

    enum Step {
        case done(Int)
        case wantRead
        case wantWrite
        case eof
        case failed(String)
    }

    private let ssl: OpaquePointer

    init?(fd: Int32) {
        guard let ctx = Self.context, let s = SSL_new(ctx) else { return nil }
        guard SSL_set_fd(s, fd) == 1 else {
            SSL_free(s)
            return nil
        }
        SSL_set_connect_state(s)
        ssl = s
    }

    deinit { SSL_free(ssl) }

    func handshake() -> Step { step(SSL_do_handshake(ssl), "TLS handshake") }

    func write(_ bytes: [UInt8]) -> Step {
        bytes.withUnsafeBytes { step(SSL_write(ssl, $0.baseAddress, Int32($0.count)), "TLS write") }
    }

    func read(_ buf: inout [UInt8]) -> Step {
        buf.withUnsafeMutableBytes { step(SSL_read(ssl, $0.baseAddress, Int32($0.count)), "TLS read") }
    }

    private func step(_ r: Int32, _ what: String) -> Step {
        if r > 0 { return .done(Int(r)) }
        switch SSL_get_error(ssl, r) {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN: return .eof
        default:
            let code = ERR_get_error()
            ERR_clear_error()
            if code == 0 { return r == 0 ? .eof : .failed("\(what): connection reset") }
            var text = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &text, text.count)
            return .failed(
                "\(what): " + String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
    }
}
