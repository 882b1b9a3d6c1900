#ifndef SPOOL_CHECKSUM_H
#define SPOOL_CHECKSUM_H
#include <stddef.h>
#include <stdint.h>

/// CRC-32C (Castagnoli) of `length` bytes, continuing from `crc` (pass 0 to start).
/// Uses the SSE4.2 crc32 instruction when the CPU has it, a table otherwise; both give identical results.
uint32_t spool_crc32c(uint32_t crc, const void *data, size_t length);

/// CRC-32C through the portable table path only (for tests that pin both paths to the same answer).
uint32_t spool_crc32c_portable(uint32_t crc, const void *data, size_t length);

#endif
