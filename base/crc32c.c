/*
 * crc32c.c - CRC32C (Castagnoli), the one copy every part of cairn uses:
 * chunk contents and index records (chunkstore/), replay log records (cm/),
 * the wire's per-block checksums (common/proto.c, vol/).
 *
 * Uses the SSE4.2 crc32 instruction when the CPU has it (checked once at
 * run time), a slice-by-8 table otherwise. It catches torn and rotted
 * files and blocks; it is not a cryptographic hash (the wire's SHA-256 is
 * verified by the cache manager when it fills a chunk).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "base/crc32c.h"

#define POLY 0x82f63b78u /* reflected Castagnoli polynomial */

static uint32_t table[8][256];
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int have_sse42;

static void
crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int j = 0; j < 8; j++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^
				      table[0][table[t - 1][i] & 0xff];
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	have_sse42 = __builtin_cpu_supports("sse4.2");
#endif
}

static uint32_t
crc_sw(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
		len--;
	}
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		w ^= crc; /* little-endian host assumed, as x86 and arm64 are */
		crc = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^
		      table[5][(w >> 16) & 0xff] ^ table[4][(w >> 24) & 0xff] ^
		      table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
		      table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("sse4.2"))) static uint32_t
crc_hw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;

	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return (uint32_t)c;
}
#endif

uint32_t
crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&once, crc_init);
	crc = ~crc;
#if defined(__x86_64__) && defined(__GNUC__)
	if (have_sse42)
		return ~crc_hw(crc, buf, len);
#endif
	return ~crc_sw(crc, buf, len);
}

/* The table version alone, so tests can compare both paths. */
uint32_t
crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&once, crc_init);
	return ~crc_sw(~crc, buf, len);
}

int
crc32c_hw_available(void)
{
	pthread_once(&once, crc_init);
	return have_sse42;
}

/*
 * Combining. A CRC is the message's polynomial times x^32 modulo POLY (the
 * pre- and post-inversions cancel out of a concatenation), so appending
 * @len2 bytes multiplies the first CRC by x^(8 * len2) mod POLY before the
 * second is added. Polynomials are in the reflected order of the table:
 * bit 31 holds x^0, bit 0 holds x^31.
 */
#define X0 0x80000000u /* the polynomial 1 */

/* a * b modulo POLY. */
static uint32_t
gf_mul(uint32_t a, uint32_t b)
{
	uint32_t prod = 0;

	for (uint32_t bit = X0; bit && a; bit >>= 1) {
		if (a & bit) {
			prod ^= b;
			a &= ~bit;
		}
		/* b times x */
		b = b & 1 ? (b >> 1) ^ POLY : b >> 1;
	}
	return prod;
}

/* x^(2^k) mod POLY for k < 64, squared up from x at first use. */
static uint32_t x2k[64];
static pthread_once_t x2k_once = PTHREAD_ONCE_INIT;

static void
x2k_init(void)
{
	x2k[0] = X0 >> 1; /* x^1 */
	for (int k = 1; k < 64; k++)
		x2k[k] = gf_mul(x2k[k - 1], x2k[k - 1]);
}

uint32_t
crc32c_combine(uint32_t crc1, uint32_t crc2, uint64_t len2)
{
	uint32_t shift = X0;

	pthread_once(&x2k_once, x2k_init);
	/* x^(8 * len2): the bits of len2 weigh x^(2^(k + 3)). */
	for (int k = 3; len2 && k < 64; k++, len2 >>= 1)
		if (len2 & 1)
			shift = gf_mul(x2k[k], shift);
	return gf_mul(shift, crc1) ^ crc2;
}
