// OpenSSL for the monitor's https probes (libssl-dev, linked statically into swiftlet-monitor).
#include <openssl/ssl.h>
#include <openssl/err.h>
