import CLinux
import Glibc
import LinuxSystem

/// A failure talking to CRIU or reported by it. `message` names the operation; the caller adds
/// the lines quoted from CRIU's log.
/// A CRIU failure: what was being done, and the error underneath (a SysError with its errno, a
/// decoding error, a hook's error), kept as the cause (Spec/errors.md).
public struct CriuError: ChainedError, Sendable {
    public var message: String
    public var cause: (any Error)?
    public var ownErrno: Int32?
    public init(_ message: String, cause: (any Error)? = nil, errno: Int32? = nil) {
        self.message = message
        self.cause = cause
        self.ownErrno = errno
    }
    public var description: String {
        guard let cause else { return message }
        return message.isEmpty ? "\(cause)" : "\(message): \(cause)"
    }
}

/// One `criu swrk 3` process: CRIU's RPC service on a SOCK_SEQPACKET socketpair. The child gets
/// our stdin/stdout/stderr, the socket as fd 3 and `extraFds` as fds 4, 5, ... (restore hands
/// external namespaces over that way, as inherit_fd entries naming those numbers).
public struct CriuService: Sendable {
    public let pid: pid_t
    let socket: SeqPacket
    public let binary: String

    /// Starts criu. A binary that cannot be executed is reported here (the exec errno, from
    /// `Proc.spawn`), not as a silent EOF later.
    public static func start(binary: String, extraFds: [Int32] = []) throws(CriuError) -> CriuService {
        let parent: SeqPacket
        let child: SeqPacket
        do { (parent, child) = try SeqPacket.pair() } catch { throw CriuError("criu: create RPC socket", cause: error) }
        defer { child.close() }
        var r = SpawnRequest([binary, "swrk", "3"], fds: [0, 1, 2, child.fd] + extraFds)
        r.searchPath = true
        do { return CriuService(pid: try Proc.spawn(r), socket: parent, binary: binary) } catch {
            parent.close()
            if error.op == "exec" {
                throw CriuError(
                    "criu: exec \(binary): \(errnoString(error.errno)) (set the criu binary with --criu PATH)",
                    errno: error.errno)
            }
            throw CriuError("criu", cause: error)
        }
    }

    public func send(_ request: CriuRequest) throws(CriuError) {
        do { try socket.send(request.encoded()) } catch { throw CriuError("criu: send request", cause: error) }
    }

    /// The next response, with the descriptor CRIU attached (orphan-pts-master), if any.
    public func receive() throws(CriuError) -> (response: CriuResponse, fd: Int32?) {
        let got: (bytes: [UInt8], fd: Int32?)?
        do { got = try socket.receive() } catch { throw CriuError("criu: read response", cause: error) }
        guard let got else { throw CriuError("criu exited without answering (\(binary) swrk)") }
        do { return (try CriuResponse.decode(got.bytes), got.fd) } catch {
            if let fd = got.fd { close(fd) }
            throw CriuError("criu", cause: error)
        }
    }

    /// Sends `request` and serves CRIU's notifications (`notify` gets the script name, the pid it
    /// carries and an attached fd, and must close that fd) until the final response, which is
    /// returned whether or not it reports success.
    public func call(
        _ request: CriuRequest,
        notify: (_ script: String, _ pid: Int32, _ fd: Int32?) throws(CriuError) -> Void = { _, _, fd in
            if let fd { close(fd) }
        }
    ) throws(CriuError) -> CriuResponse {
        try send(request)
        while true {
            let (resp, fd) = try receive()
            guard resp.requestType == .notify else {
                if let fd { close(fd) }
                return resp
            }
            try notify(resp.notifyScript ?? "", resp.notifyPid ?? 0, fd)
            try send(CriuRequest(type: .notify, notifySuccess: true))
        }
    }

    /// Closes our end and waits for criu to exit; returns its exit status (128+N for signal N).
    /// `kill`: SIGKILL it first, for a service that has nothing left to do but would take the
    /// hang-up as an error (after a pre-dump it waits for the next request of an iterative series).
    @discardableResult
    public func finish(kill: Bool = false) -> Int32 {
        if kill { _ = Glibc.kill(pid, SIGKILL) }
        socket.close()
        while true {
            var st: Int32 = 0
            let r = waitpid(pid, &st, 0)
            if r == pid { return Proc.exitCode(st) }
            if r < 0 && errno != EINTR { return -1 }
        }
    }
}

/// The lines of a CRIU log worth quoting in an error: those containing "Error" (with the line
/// before each), at most `limit` of them, the last ones. Empty when the log cannot be read.
public func criuLogErrors(_ path: String, limit: Int = 6) -> [String] {
    guard let text = try? FS.readString(path) else { return [] }
    let lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    var picked: [Int] = []
    for (i, l) in lines.enumerated() where l.contains("Error") {
        if i > 0, !picked.contains(i - 1), !lines[i - 1].contains("Error") { picked.append(i - 1) }
        picked.append(i)
    }
    if picked.isEmpty { return Array(lines.suffix(3)) }
    return picked.suffix(limit).map { lines[$0] }
}
