/* endpoint_local.h — whether a ZeroMQ endpoint a worker connects to is on
 * the worker's own host, where the "wire" is a copy by the same CPUs and
 * sending θ in chunks overlaps nothing (sync_chunk_kib: auto). */
#ifndef PS_ENDPOINT_LOCAL_H
#define PS_ENDPOINT_LOCAL_H

#include <stdbool.h>

/* True for ipc:// and inproc://, and for tcp:// to a loopback address
 * (127.0.0.0/8, ::1, ::ffff:127.x) or to an address of one of this host's
 * interfaces (as its name resolves; the part after a ';' source). False
 * for anything else, or a host that does not resolve. */
bool ps_endpoint_local(const char *endpoint);

#endif
