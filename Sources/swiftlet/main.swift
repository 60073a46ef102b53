import Glibc
import RuntimeCLI

exit(runSwiftlet(Array(CommandLine.arguments.dropFirst())))
