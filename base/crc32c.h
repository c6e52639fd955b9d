/*
 * crc32c.h - CRC32C (Castagnoli), shared by every part of cairn.
 *
 * Layer rule: base/ is the lowest level. It includes libc and nothing of
 * ours, so chunkstore/ (which may include nothing of ours but base/) and
 * common/ can both use it; tests/check-layers.sh holds it to that. Its .c
 * files are compiled into libchunkstore and libcairncommon from this one
 * place (base/include.am), so there is one implementation, not one per
 * library.
 */
#ifndef CAIRN_BASE_CRC32C_H
#define CAIRN_BASE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * CRC32C of @len bytes at @buf, chainable: crc = crc32c(crc, buf, len),
 * starting at 0; crc32c(0, "123456789", 9) is 0xe3069283. SSE4.2 when the
 * CPU has it, a table otherwise; both give the same value. Any thread.
 */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/*
 * The CRC32C of A followed by B, from @crc1 = crc32c(0, A, ...), @crc2 =
 * crc32c(0, B, ...) and B's length @len2, without reading either: a few
 * hundred shifts, whatever the lengths. Lets a reader that checked a body's
 * blocks one by one have the whole body's CRC32C without a second pass.
 */
uint32_t crc32c_combine(uint32_t crc1, uint32_t crc2, uint64_t len2);

/* The table path alone, and whether the SSE4.2 path is in use: for tests
 * that compare the two. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);
int crc32c_hw_available(void);

#endif /* CAIRN_BASE_CRC32C_H */
