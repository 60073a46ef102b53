import Glibc
import MonitorCore

exit(runMonitor(CommandLine.arguments))
