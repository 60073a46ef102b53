import LinuxSystem
import OCI

/// The one error type at the library boundary (Spec/errors.md). `message` is what this layer knows
/// (the step that failed, or the whole story for an error made here); `cause` is the error it wraps
/// (a SysError, a module error, the container init's ChildError, another RuntimeError). Printed as
/// `message: cause`, so a step is named once and the errno's text comes from the bottom of the chain;
/// `errno` finds that number without parsing text. The CLI maps `kind` to an exit status in one place
/// (`exitStatus(for:verb:)` in RuntimeCLI/Entry.swift).
public struct RuntimeError: ChainedError, Sendable {
    public enum Kind: Sendable { case notFound, exists, invalidState, invalidArgument, unsupported, `internal` }
    public var kind: Kind
    public var message: String
    public var cause: (any Error)?

    public init(_ kind: Kind, _ message: String, cause: (any Error)? = nil) {
        self.kind = kind
        self.message = message
        self.cause = cause
    }

    public var description: String {
        guard let cause else { return message }
        return message.isEmpty ? "\(cause)" : "\(message): \(cause)"
    }

    /// The errno at the bottom of the chain (a failed system call here or in the container's init).
    public var errno: Int32? { errnoInChain(self) }

    /// Adds context while unwinding: a RuntimeError "prefix" caused by this one, of the same kind.
    public func context(_ prefix: String) -> RuntimeError { RuntimeError(kind, prefix, cause: self) }

    /// `e` itself if it is a RuntimeError, else a RuntimeError caused by it that adds no text.
    static func wrapping(_ e: any Error) -> RuntimeError { e as? RuntimeError ?? RuntimeError(.internal, "", cause: e) }

    static func sys(_ e: SysError, _ context: String? = nil) -> RuntimeError {
        RuntimeError(.internal, context ?? "", cause: e)
    }
    static func config(_ e: OCIError) -> RuntimeError { RuntimeError(.invalidArgument, "config.json", cause: e) }
}

/// Runs a step, turning its error into a RuntimeError that names the step and keeps the error as
/// its cause (a RuntimeError keeps its kind).
@inline(__always)
func step<T>(_ context: String, _ body: () throws -> T) throws(RuntimeError) -> T {
    do { return try body() } catch let e as RuntimeError {
        throw e.context(context)
    } catch {
        throw RuntimeError(.internal, context, cause: error)
    }
}
