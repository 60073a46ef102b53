import Glibc
import LinuxSystem

public enum Stream: Sendable {
    case stdout, stderr
    var name: String { self == .stdout ? "stdout" : "stderr" }
}

/// Formats container output in the CRI "k8s-file" format: one record per line,
/// `<RFC3339Nano local time with offset> <stdout|stderr> <F|P> <text>\n`; a chunk that does not end
/// in a newline becomes a partial record (`P`) with a newline added.
public enum K8sFormat {
    public static func records(_ chunk: ArraySlice<UInt8>, stream: Stream, timestamp: String) -> [[UInt8]] {
        var out: [[UInt8]] = []
        let prefix = Array("\(timestamp) \(stream.name) ".utf8)
        var start = chunk.startIndex
        while start < chunk.endIndex {
            var record = prefix
            if let nl = chunk[start...].firstIndex(of: UInt8(ascii: "\n")) {
                record += Array("F ".utf8)
                record += chunk[start...nl]
                start = nl + 1
            } else {
                record += Array("P ".utf8)
                record += chunk[start...]
                record.append(UInt8(ascii: "\n"))
                start = chunk.endIndex
            }
            out.append(record)
        }
        return out
    }

    /// `2026-11-29T01:16:19.538328371+00:00` in local time, as conmon writes it.
    public static func timestamp(seconds: Int, nanoseconds: Int) -> String {
        var t = time_t(seconds)
        var tmv = tm()
        localtime_r(&t, &tmv)
        func pad(_ v: Int, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        let off = Int(tmv.tm_gmtoff)
        let sign = off < 0 ? "-" : "+"
        return "\(pad(Int(tmv.tm_year) + 1900, 4))-\(pad(Int(tmv.tm_mon) + 1, 2))-\(pad(Int(tmv.tm_mday), 2))T"
            + "\(pad(Int(tmv.tm_hour), 2)):\(pad(Int(tmv.tm_min), 2)):\(pad(Int(tmv.tm_sec), 2)).\(pad(nanoseconds, 9))"
            + "\(sign)\(pad(abs(off) / 3600, 2)):\(pad(abs(off) % 3600 / 60, 2))"
    }

    public static func now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return timestamp(seconds: Int(ts.tv_sec), nanoseconds: Int(ts.tv_nsec))
    }
}

/// One k8s-file log. Over --log-size-max the file starts again empty (a new file renamed over
/// `<path>`, like conmon); `reopen` serves log rotation by the kubelet (ctl message 2).
/// A failing write (disk full) never blocks the container: the record is dropped and counted.
final class K8sFileLog {
    let path: String
    let sizeMax: Int64
    private var fd: Int32 = -1
    private var size: Int64 = 0
    private(set) var droppedRecords = 0
    private(set) var lastError: String?

    init(path: String, sizeMax: Int64) throws(SysError) {
        self.path = path
        self.sizeMax = sizeMax
        try open(truncate: false)
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Never through a symlink: the new file of a rotation is a fresh `ReplacementFile`, and the log
    /// path is opened with O_NOFOLLOW.
    private func open(truncate: Bool) throws(SysError) {
        if truncate {
            let file = try ReplacementFile(path, mode: 0o600)
            try file.commit()
            if fd >= 0 { close(fd) }
            fd = file.fd
            size = 0
        } else {
            let nfd = try sys("open", path) {
                Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o600)
            }
            if fd >= 0 { close(fd) }
            fd = nfd
            var st = stat()
            size = fstat(fd, &st) == 0 ? Int64(st.st_size) : 0
        }
    }

    func reopen() throws(SysError) { try open(truncate: false) }

    /// Writes the chunk's records; the size cap is checked per record, so the file stays under it.
    func write(_ chunk: ArraySlice<UInt8>, stream: Stream) {
        var batch: [UInt8] = []
        for record in K8sFormat.records(chunk, stream: stream, timestamp: K8sFormat.now()) {
            if sizeMax > 0 && size + Int64(batch.count + record.count) > sizeMax {
                flush(batch)
                batch = []
                do { try open(truncate: true) } catch {
                    fail("\(error)")
                    return
                }
            }
            batch += record
        }
        flush(batch)
    }

    private func flush(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        do {
            try FS.writeAll(fd: fd, bytes, path: path)
            size += Int64(bytes.count)
        } catch {
            fail("\(error)")
        }
    }

    private func fail(_ message: String) {
        droppedRecords += 1
        lastError = message
    }
}
