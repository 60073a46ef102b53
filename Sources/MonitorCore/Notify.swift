import CLinux
import Glibc
import LinuxSystem

/// `--sdnotify-socket HOST`: conmon's sd_notify relay for `podman run --sdnotify=container`. The
/// monitor binds `<bundle>/notify/notify.sock` (SOCK_DGRAM, mode 0777; podman makes the `notify`
/// directory, mounts it at /run/notify in the container and sets NOTIFY_SOCKET there). Of each
/// datagram only `READY=1` (or else `WATCHDOG=1`) is passed on to HOST, as conmon does; the send
/// never blocks (a message HOST does not take at once is lost, as with conmon).
final class NotifyRelay {
    let fd: Int32
    let path: String
    let host: String
    private let out: Int32

    init(bundle: String, host: String, loop: EventLoop) throws(SysError) {
        self.host = host
        path = bundle + "/notify/notify.sock"
        out = try sys("socket", host) {
            socket(
                AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        }
        do {
            fd = try UnixSocket.listen(
                directory: bundle + "/notify", name: "notify.sock", type: Int32(SOCK_DGRAM.rawValue), mode: 0o777)
        } catch {
            close(out)
            throw error
        }
        do { try loop.watch(fd) { [unowned self] _ in self.relay() } } catch {
            close(fd)
            close(out)
            throw error
        }
    }

    deinit {
        close(fd)
        close(out)
    }

    /// What conmon forwards for a datagram (searched up to its first NUL): nil for anything else.
    static func forwarded(_ datagram: ArraySlice<UInt8>) -> String? {
        let text = datagram.prefix { $0 != 0 }
        for keep in ["READY=1", "WATCHDOG=1"] where contains(text, Array(keep.utf8)) { return keep }
        return nil
    }

    private static func contains(_ hay: ArraySlice<UInt8>, _ needle: [UInt8]) -> Bool {
        guard hay.count >= needle.count else { return false }
        var i = hay.startIndex
        while i + needle.count <= hay.endIndex {
            if hay[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }

    /// Passes on every datagram waiting (also called once the container exited).
    func relay() {
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard n >= 0 else { return }
            guard let message = Self.forwarded(buf[0..<n]) else { continue }
            _ = try? withUnixAddress(host, op: "sendto") { (addr, len) throws(SysError) in
                Array(message.utf8).withUnsafeBytes {
                    sendto(out, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT), addr, len)
                }
            }
        }
    }
}
