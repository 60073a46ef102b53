// CExeSeal: re-executes swiftlet from a sealed copy of its own binary before main() runs (CVE-2019-5736).
// The work is done by a constructor in exeseal.c; linking this target into an executable is enough.
// Only the `swiftlet` executable links it (never the monitor, never a test bundle).
#pragma once

