import LinuxSystem
import OCI

/// The one error type at the library boundary. The CLI prints `message` (runc style) and exits 1.
public struct RuntimeError: Error, CustomStringConvertible, Sendable {
    public enum Code: Sendable { case notFound, exists, invalidState, invalidArgument, unsupported, `internal` }
    public var code: Code
    public var message: String
    /// For `exec`/`run`: the exit status the CLI should use (runc: 255 when the exec itself fails).
    public var exitStatus: Int32 = 1

    public init(_ code: Code, _ message: String) { self.code = code; self.message = message }
    public var description: String { message }

    /// Adds context while unwinding: "create: " + message.
    public func context(_ prefix: String) -> RuntimeError {
        var e = self; e.message = prefix + ": " + message; return e
    }

    static func sys(_ e: SysError, _ context: String? = nil) -> RuntimeError {
        RuntimeError(.internal, context.map { "\($0): \(e)" } ?? e.description)
    }
    static func config(_ e: OCIError) -> RuntimeError { RuntimeError(.invalidArgument, "config.json: \(e)") }
}

/// Runs a step, turning its error into a RuntimeError that names the step.
@inline(__always)
func step<T>(_ context: String, _ body: () throws -> T) throws(RuntimeError) -> T {
    do { return try body() } catch let e as SysError {
        throw RuntimeError.sys(e, context)
    } catch let e as RuntimeError {
        throw e.context(context)
    } catch {
        throw RuntimeError(.internal, "\(context): \(error)")
    }
}
