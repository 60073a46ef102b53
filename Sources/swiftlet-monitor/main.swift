import Glibc
import MonitorCore

// Entered as containerd-shim-swiftlet-v2 (a link to this binary), it is containerd's runtime v2 shim.
let name = CommandLine.arguments.first.map { $0.split(separator: "/").last.map(String.init) ?? $0 } ?? ""
exit(name == shimBinaryName ? runShim(CommandLine.arguments) : runMonitor(CommandLine.arguments))
