/* Blocking I/O helpers every layer uses: a write that finishes or fails,
 * and a wait for a descriptor under a deadline that another descriptor
 * (a stop signal) can cut short. */
#ifndef MTLS_IO_H
#define MTLS_IO_H

#include <stddef.h>
#include <stdint.h>

/* Writes all n bytes (retrying short writes and EINTR). 0 or -1. */
int mtls_write_all(int fd, const void *p, size_t n);

/* Waits for events on fd until deadline (mtls_now_ms clock), or until
 * stop_fd is readable (-1: no stop). 1 ready, 0 timed out, -1 stopped or
 * an error. */
int mtls_wait_fd(int fd, short events, int stop_fd, uint64_t deadline);

#endif
